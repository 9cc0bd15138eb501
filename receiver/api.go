package receiver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/zmyorg/zmy-responder/internal/incident"
	"github.com/zmyorg/zmy-responder/remediate"
)

// maxDecisionBody bounds the JSON body of approve/abort/pause/unpause.
const maxDecisionBody = 64 << 10

func (s *Server) handleListIncidents(c echo.Context) error {
	var openOnly bool
	switch st := c.QueryParam("state"); st {
	case "", "all":
	case "open":
		openOnly = true
	default:
		return echo.NewHTTPError(http.StatusBadRequest, fmt.Sprintf("state %q: want open or all", st))
	}
	incs, err := s.j.List(c.Request().Context(), openOnly)
	if err != nil {
		return apiError(err)
	}
	return c.JSON(http.StatusOK, map[string]any{"incidents": incs})
}

func (s *Server) handleGetIncident(c echo.Context) error {
	inc, err := s.j.Get(c.Request().Context(), c.Param("id"))
	if err != nil {
		return apiError(err)
	}
	return c.JSON(http.StatusOK, inc)
}

// decision is the body of approve, abort, pause and unpause.
type decision struct {
	By     string `json:"by"`
	Reason string `json:"reason"`
}

// readDecision decodes {"by","reason"}; both are required because the journal records who
// decided and why.
func (s *Server) readDecision(c echo.Context) (incident.Approval, error) {
	var d decision
	dec := json.NewDecoder(http.MaxBytesReader(c.Response(), c.Request().Body, maxDecisionBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		if errors.Is(err, io.EOF) {
			return incident.Approval{}, echo.NewHTTPError(http.StatusBadRequest, `empty body: want {"by": "…", "reason": "…"}`)
		}
		return incident.Approval{}, echo.NewHTTPError(http.StatusBadRequest, "invalid JSON body: "+err.Error())
	}
	var missing []string
	if strings.TrimSpace(d.By) == "" {
		missing = append(missing, `"by"`)
	}
	if strings.TrimSpace(d.Reason) == "" {
		missing = append(missing, `"reason"`)
	}
	if len(missing) > 0 {
		return incident.Approval{}, echo.NewHTTPError(http.StatusBadRequest, strings.Join(missing, " and ")+" required")
	}
	return incident.Approval{By: d.By, Reason: d.Reason, At: s.now()}, nil
}

func (s *Server) runbookOr503() (Runbook, error) {
	rb := s.getRunbook()
	if rb == nil {
		return nil, echo.NewHTTPError(http.StatusServiceUnavailable, "the runbook engine is not running")
	}
	return rb, nil
}

func (s *Server) handleDecision(call func(Runbook, context.Context, string, incident.Approval) (*incident.Incident, error)) echo.HandlerFunc {
	return func(c echo.Context) error {
		a, err := s.readDecision(c)
		if err != nil {
			return err
		}
		rb, err := s.runbookOr503()
		if err != nil {
			return err
		}
		inc, err := call(rb, c.Request().Context(), c.Param("id"), a)
		if err != nil {
			return apiError(err)
		}
		return c.JSON(http.StatusOK, inc)
	}
}

func (s *Server) handlePause(call func(Runbook, context.Context, string, incident.Approval) error) echo.HandlerFunc {
	return func(c echo.Context) error {
		a, err := s.readDecision(c)
		if err != nil {
			return err
		}
		rb, err := s.runbookOr503()
		if err != nil {
			return err
		}
		if err := call(rb, c.Request().Context(), c.Param("name"), a); err != nil {
			return apiError(err)
		}
		return c.JSON(http.StatusOK, map[string]string{"status": "success", "cluster": c.Param("name")})
	}
}

func (s *Server) handleClusters(c echo.Context) error {
	rb, err := s.runbookOr503()
	if err != nil {
		return err
	}
	cs, err := rb.Clusters(c.Request().Context())
	if err != nil {
		return apiError(err)
	}
	return c.JSON(http.StatusOK, cs)
}

func (s *Server) handlePlan(c echo.Context) error {
	rb, err := s.runbookOr503()
	if err != nil {
		return err
	}
	p, err := rb.Plan(c.Request().Context(), c.Param("name"))
	if err != nil {
		return apiError(err)
	}
	return c.JSON(http.StatusOK, p)
}

// apiError maps the journal's and engine's sentinel errors onto status codes.
func apiError(err error) error {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, incident.ErrNotFound), errors.Is(err, incident.ErrUnknownCluster):
		code = http.StatusNotFound
	case errors.Is(err, incident.ErrConflict):
		code = http.StatusConflict
	case errors.Is(err, remediate.ErrInvalid):
		code = http.StatusBadRequest
	case errors.Is(err, context.DeadlineExceeded):
		code = http.StatusGatewayTimeout
	}
	return echo.NewHTTPError(code, err.Error()).SetInternal(err)
}
