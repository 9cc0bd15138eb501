package receiver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/zmyorg/zmy-responder/internal/apiclient"
	"github.com/zmyorg/zmy-responder/internal/incident"
	"github.com/zmyorg/zmy-responder/remediate"
)

// maxDecisionBody bounds the JSON body of approve/abort/pause/unpause.
const maxDecisionBody = 64 << 10

// incidentAction is a human decision on one incident: POST /api/v1/incidents/{id}/<Name>, a
// form on the console's incident page and a zmyrtool command. A new decision is one more entry
// in incidentActions (and its path in openapi.yaml).
type incidentAction struct {
	Name  string // the last path element, the form's and the command's name
	Label string // the console's button
	Help  string // what it does, one sentence
	call  func(Runbook, context.Context, string, incident.Approval) (*incident.Incident, error)
	// offered says whether the console shows the form for the incident as it is now.
	offered func(*incident.Incident) bool
	// reasonOptional: the reason is a comment the human may leave out (an acknowledgement).
	reasonOptional bool
}

var incidentActions = []incidentAction{
	{Name: "approve", Label: "Approve recovery", call: Runbook.Approve,
		Help:    "Lets the runbook arbitrate and recover once the network has converged and etcd is healthy.",
		offered: approvable},
	{Name: "abort", Label: "Abort", call: Runbook.Abort,
		Help:    "Stops the runbook now; the incident says what state the nodes were left in.",
		offered: func(inc *incident.Incident) bool { return inc.Open() && inc.Abort == nil }},
	{Name: "ack", Label: "Acknowledge", call: Runbook.Ack, reasonOptional: true,
		Help:    "Records that you are on it; the runbook goes on and nothing is approved.",
		offered: func(inc *incident.Incident) bool { return inc.Open() }},
	{Name: "retry", Label: "Re-evaluate", call: Runbook.Retry,
		Help:    "Re-evaluates a closed incident whose alert still fires, as a new incident linked to it (for anti_flap: overrides the anti-flap period).",
		offered: remediate.Retryable},
}

// approvable is when the engine takes an approval: confirmed, and the gate not yet passed.
func approvable(inc *incident.Incident) bool { return remediate.Approvable(inc) }

// clusterAction is POST /api/v1/clusters/{name}/<Name>: the kill switch.
type clusterAction struct {
	Name, Label, Help string
	call              func(Runbook, context.Context, string, incident.Approval) error
	Pauses            bool // the cluster's kill switch after the call
}

var clusterActions = []clusterAction{
	{Name: "pause", Label: "Pause", Pauses: true, call: Runbook.Pause,
		Help: "Sets the kill switch: no new remediation starts on this cluster until unpaused."},
	{Name: "unpause", Label: "Unpause", Pauses: false, call: Runbook.Unpause,
		Help: "Clears the kill switch."},
}

// The answers' types are the API client's: one definition of each answer, which openapi.yaml
// describes and the client reads.

// resultOf summarises the incident after an action: a closed incident's reason, else the
// newest timeline line (the engine writes what it recorded there).
func resultOf(inc *incident.Incident) apiclient.ActionResult {
	r := apiclient.ActionResult{ID: inc.ID, Cluster: inc.Cluster, Step: inc.Step, Outcome: inc.Outcome, Message: inc.Reason}
	if r.Message == "" && len(inc.Timeline) > 0 {
		r.Message = inc.Timeline[len(inc.Timeline)-1].Message
	}
	return r
}

// pageQuery reads GET /api/v1/incidents's parameters.
func pageQuery(c echo.Context) (incident.PageQuery, error) {
	q := incident.PageQuery{
		State: incident.StateFilter(c.QueryParam("state")), Cluster: c.QueryParam("cluster"),
		Cursor: c.QueryParam("cursor"),
	}
	if l := c.QueryParam("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > incident.MaxPageLimit {
			return q, echo.NewHTTPError(http.StatusBadRequest, fmt.Sprintf("limit %q: want 1 to %d", l, incident.MaxPageLimit))
		}
		q.Limit = n
	}
	if _, err := incident.ParseStateFilter(string(q.State)); err != nil {
		return q, echo.NewHTTPError(http.StatusBadRequest, err.Error())
	}
	return q, nil
}

func (s *Server) handleListIncidents(c echo.Context) error {
	q, err := pageQuery(c)
	if err != nil {
		return err
	}
	p, err := s.j.Page(c.Request().Context(), q)
	if err != nil {
		return apiError(err)
	}
	return c.JSON(http.StatusOK, apiclient.IncidentPage{Incidents: p.Incidents, NextCursor: p.Next})
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
// decided and why (an acknowledgement's reason is an optional comment).
func (s *Server) readDecision(c echo.Context, reasonOptional bool) (incident.Approval, error) {
	var d decision
	dec := json.NewDecoder(http.MaxBytesReader(c.Response(), c.Request().Body, maxDecisionBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		if errors.Is(err, io.EOF) {
			return incident.Approval{}, echo.NewHTTPError(http.StatusBadRequest, `empty body: want {"by": "…", "reason": "…"}`)
		}
		return incident.Approval{}, echo.NewHTTPError(http.StatusBadRequest, "invalid JSON body: "+err.Error())
	}
	return s.decisionOf(d, reasonOptional)
}

// decisionOf checks a decision from the API or a console form.
func (s *Server) decisionOf(d decision, reasonOptional bool) (incident.Approval, error) {
	var missing []string
	if strings.TrimSpace(d.By) == "" {
		missing = append(missing, `"by"`)
	}
	if strings.TrimSpace(d.Reason) == "" && !reasonOptional {
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

// doIncidentAction runs an incident action for the API and the console.
func (s *Server) doIncidentAction(ctx context.Context, a incidentAction, id string, d incident.Approval) (apiclient.ActionResult, error) {
	rb, err := s.runbookOr503()
	if err != nil {
		return apiclient.ActionResult{}, err
	}
	inc, err := a.call(rb, ctx, id, d)
	if err != nil {
		return apiclient.ActionResult{}, apiError(err)
	}
	return resultOf(inc), nil
}

// doClusterAction runs pause or unpause for the API and the console.
func (s *Server) doClusterAction(ctx context.Context, a clusterAction, cluster string, d incident.Approval) (apiclient.ClusterResult, error) {
	rb, err := s.runbookOr503()
	if err != nil {
		return apiclient.ClusterResult{}, err
	}
	if err := a.call(rb, ctx, cluster, d); err != nil {
		return apiclient.ClusterResult{}, apiError(err)
	}
	return apiclient.ClusterResult{Cluster: cluster, Paused: a.Pauses, Message: fmt.Sprintf("%sd by %s: %s", a.Name, d.By, d.Reason)}, nil
}

func (s *Server) handleIncidentAction(a incidentAction) echo.HandlerFunc {
	return func(c echo.Context) error {
		d, err := s.readDecision(c, a.reasonOptional)
		if err != nil {
			return err
		}
		r, err := s.doIncidentAction(c.Request().Context(), a, c.Param("id"), d)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, r)
	}
}

func (s *Server) handleClusterAction(a clusterAction) echo.HandlerFunc {
	return func(c echo.Context) error {
		d, err := s.readDecision(c, false)
		if err != nil {
			return err
		}
		r, err := s.doClusterAction(c.Request().Context(), a, c.Param("name"), d)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, r)
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
	name := c.Param("name")
	if s.Config().Cluster(name) == nil {
		return apiError(fmt.Errorf("plan %s: %w", name, incident.ErrUnknownCluster))
	}
	// A plan runs about ten zmyctl commands on every node: a few per cluster per window.
	if wait := s.plans.take(name, s.now()); wait > 0 {
		secs := int(wait.Seconds() + 0.999)
		c.Response().Header().Set("Retry-After", strconv.Itoa(secs))
		return echo.NewHTTPError(http.StatusTooManyRequests,
			fmt.Sprintf("plan of cluster %s: at most %d per %s; retry in %ds", name, planBurst, planEvery*planBurst, secs))
	}
	p, err := rb.Plan(c.Request().Context(), name)
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
	case errors.Is(err, remediate.ErrInvalid), errors.Is(err, incident.ErrInvalidQuery):
		code = http.StatusBadRequest
	case errors.Is(err, context.DeadlineExceeded):
		code = http.StatusGatewayTimeout
	}
	return echo.NewHTTPError(code, err.Error()).SetInternal(err)
}
