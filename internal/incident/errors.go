package incident

import "errors"

// Sentinel errors callers branch on (the HTTP API maps them to status codes).
var (
	ErrNotFound       = errors.New("incident not found")        // 404
	ErrUnknownCluster = errors.New("cluster not configured")    // 404
	ErrConflict       = errors.New("not allowed in this state") // 409: e.g. approve a closed incident
)
