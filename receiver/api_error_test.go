package receiver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/incident"
	"github.com/zmyorg/zmy-responder/remediate"
)

// The engine's sentinel errors become the status codes the API documents, however wrapped.
func TestAPIErrorStatusCodes(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code int
	}{
		{incident.ErrNotFound, http.StatusNotFound},
		{incident.ErrUnknownCluster, http.StatusNotFound},
		{incident.ErrConflict, http.StatusConflict},
		{remediate.ErrInvalid, http.StatusBadRequest},
		{context.DeadlineExceeded, http.StatusGatewayTimeout},
		{errors.New("journal closed"), http.StatusInternalServerError},
	} {
		err := apiError(fmt.Errorf("approve inc-000001: %w", tc.err))
		var he *echo.HTTPError
		require.ErrorAs(t, err, &he)
		require.Equal(t, tc.code, he.Code, tc.err.Error())
	}
}
