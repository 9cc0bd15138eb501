package zmy

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// The node admin API (docs/node-contract.md): what zmyctl is a client of, and what the api
// driver calls directly. One endpoint per command, named by the zmyctl words:
//
//	GET  /admin/v1/status?quorum=true      status --quorum          QuorumStatus
//	GET  /admin/v1/raft/state              raft state               RaftState
//	POST /admin/v1/raft/suspend            raft suspend --force     {"force":true}  RaftState
//	POST /admin/v1/raft/resume             raft resume              {}              RaftState
//	POST /admin/v1/snapshot/save           snapshot save --tag T    {"tag":"T"}     Snapshot
//	GET  /admin/v1/snapshot/list           snapshot list            []Snapshot
//	POST /admin/v1/quorum/recover          quorum recover --auto    {"auto":true}   RecoverResult
//	GET  /admin/v1/debug/netcheck?full=true debug netcheck --full   Netcheck
//
// The request's fields are zmyctl's flags: a JSON body for POST, the query for GET; a boolean
// true is the flag, a string its value. A 200 answer is exactly what `zmyctl … -o json` prints.
// Any other answer has the body APIError, whose code maps onto zmyctl's exit codes (APIErrors).
// The caller's ZMY_ACTOR travels in the ActorHeader.
const (
	// APIPrefix is where a node serves the admin API, under its admin URL.
	APIPrefix = "/admin/v1/"
	// ActorHeader carries the caller's actor (what zmyctl gets as ZMY_ACTOR).
	ActorHeader = "Zmy-Actor"
)

// readCommands are answered to GET; every other command is a POST.
var readCommands = []string{CmdStatus, CmdRaftState, CmdSnapshotList, CmdNetcheck}

// valueFlags are the zmyctl flags that take a value; every other flag is a boolean.
var valueFlags = []string{"--tag"}

// APIRequest is one admin API call: how a zmyctl command is asked over HTTP.
type APIRequest struct {
	Method string
	Path   string            // APIPrefix + the command words joined by "/"
	Fields map[string]string // flag name (without "--") → value; "true" for a boolean flag
}

// NewAPIRequest turns zmyctl arguments into the admin API call that asks the same: the words
// name the path, the flags become fields. Output flags are dropped: the API answers JSON.
func NewAPIRequest(args []string) APIRequest {
	var words []string
	fields := map[string]string{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, value, hasValue := strings.Cut(a, "=")
		switch {
		case name == "-o" || name == "--output":
			if !hasValue {
				i++
			}
		case strings.HasPrefix(a, "-"):
			if !hasValue {
				value = "true"
				if slices.Contains(valueFlags, name) && i+1 < len(args) {
					i++
					value = args[i]
				}
			}
			fields[strings.TrimLeft(name, "-")] = value
		default:
			words = append(words, a)
		}
	}
	method := http.MethodPost
	if slices.Contains(readCommands, commandName(words)) {
		method = http.MethodGet
	}
	escaped := make([]string, len(words))
	for i, w := range words {
		escaped[i] = url.PathEscape(w)
	}
	return APIRequest{Method: method, Path: APIPrefix + strings.Join(escaped, "/"), Fields: fields}
}

// Args is the zmyctl form of an admin API call: the words of its path, then its fields as
// flags in name order. An error is a usage error (a field that is not a flag, a bad path).
func (r APIRequest) Args() ([]string, error) {
	rest, ok := strings.CutPrefix(r.Path, APIPrefix)
	if !ok || rest == "" {
		return nil, fmt.Errorf("path %q is not under %s", r.Path, APIPrefix)
	}
	var args []string
	for w := range strings.SplitSeq(rest, "/") {
		u, err := url.PathUnescape(w)
		if err != nil || u == "" || strings.HasPrefix(u, "-") {
			return nil, fmt.Errorf("path %q: bad command word %q", r.Path, w)
		}
		args = append(args, u)
	}
	names := make([]string, 0, len(r.Fields))
	for k := range r.Fields {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		v := r.Fields[k]
		if k == "" || strings.HasPrefix(k, "-") {
			return nil, fmt.Errorf("bad field name %q", k)
		}
		switch {
		case slices.Contains(valueFlags, "--"+k):
			args = append(args, "--"+k, v)
		case v == "true":
			args = append(args, "--"+k)
		case v == "false":
		default:
			args = append(args, "--"+k, v)
		}
	}
	return args, nil
}

// APIError is the body of every admin API answer that is not a 200.
type APIError struct {
	Error APIErrorDetail `json:"error"`
}

// APIErrorDetail says what went wrong: Code is one of APIErrors' codes, Message for humans.
type APIErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// APIErrorCode is one error code of the admin API: its HTTP status and the zmyctl exit it is.
type APIErrorCode struct {
	Code   string
	Status int
	Exit   int
}

// APIErrors maps the admin API's error codes onto zmyctl's exit codes. An answer without one of
// these codes (a proxy's 502, a 401) is ExitError.
var APIErrors = []APIErrorCode{
	{"usage", http.StatusBadRequest, ExitUsage},
	{"no_unique_majority", http.StatusConflict, ExitNoUniqueMajority},
	{"not_converged", http.StatusConflict, ExitNotConverged},
	{"refused", http.StatusConflict, ExitRefused},
	{"error", http.StatusInternalServerError, ExitError},
}

// APIErrorForExit is the error code and status a node answers for what zmyctl would exit with.
func APIErrorForExit(exit int) APIErrorCode {
	for _, e := range APIErrors {
		if e.Exit == exit {
			return e
		}
	}
	return APIErrors[len(APIErrors)-1]
}

// exitForAPICode is the zmyctl exit an error code stands for; ExitError when unknown.
func exitForAPICode(code string) int {
	for _, e := range APIErrors {
		if e.Code == code {
			return e.Exit
		}
	}
	return ExitError
}
