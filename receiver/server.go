// Package receiver is zmy-responder's front door: the Alertmanager webhook that journals every
// alert before answering, the incident and cluster API, the operational endpoints and gRPC
// health, and Run, which wires them to the journal and the runbook engine and shuts them down
// cleanly.
package receiver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/zmyorg/zmy-responder/internal/config"
	"github.com/zmyorg/zmy-responder/internal/incident"
	"github.com/zmyorg/zmy-responder/remediate"
)

// Runbook is what the API needs of the runbook engine (remediate.Engine, through an adapter
// when its result types differ).
type Runbook interface {
	Kick(id string) // an open incident got a delivery
	Approve(ctx context.Context, id string, a incident.Approval) (*incident.Incident, error)
	Abort(ctx context.Context, id string, a incident.Approval) (*incident.Incident, error)
	Ack(ctx context.Context, id string, a incident.Approval) (*incident.Incident, error)
	Retry(ctx context.Context, id string, a incident.Approval) (*incident.Incident, error)
	Clusters(ctx context.Context) ([]remediate.ClusterStatus, error)
	Pause(ctx context.Context, cluster string, a incident.Approval) error
	Unpause(ctx context.Context, cluster string, a incident.Approval) error
	Plan(ctx context.Context, cluster string) (*remediate.PlanReport, error)
}

// state is everything a reload replaces, swapped as one value.
type state struct {
	cfg         *config.Config
	webhookAuth *credentials
	apiAuth     *credentials
	crossOrigin *http.CrossOriginProtection
}

// ServerOptions are the Server's collaborators.
type ServerOptions struct {
	Journal    Journal // required
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer // served on /metrics; nil serves an empty registry
	Runbook    Runbook             // nil: the runbook endpoints answer 503
	// Reload reloads the configuration for POST /-/reload; nil answers 503.
	Reload func() error
	Now    func() time.Time
}

// Server is the HTTP API. It is an http.Handler; Run serves it.
type Server struct {
	j        Journal
	logger   *slog.Logger
	now      func() time.Time
	gatherer prometheus.Gatherer
	reload   func() error
	metrics  *metrics
	echo     *echo.Echo
	bodies   *bodyBudget // webhook body bytes being read and decoded (webhook.go)
	// unknownLog rate-limits the unknown-cluster warning; the counter counts every alert.
	unknownLog unknownLog
	plans      *planLimiter // dry-run plans per cluster
	csrfKey    []byte       // console form tokens
	console    *console

	state   atomic.Pointer[state]
	runbook atomic.Pointer[Runbook]
	ready   atomic.Bool
}

// NewServer builds the API over the journal with cfg as its first configuration.
func NewServer(cfg *config.Config, opts ServerOptions) (*Server, error) {
	if opts.Journal == nil {
		return nil, errors.New("receiver: a journal is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Gatherer == nil {
		opts.Gatherer = prometheus.NewRegistry()
	}
	m, err := newMetrics(opts.Registerer, opts.Journal)
	if err != nil {
		return nil, fmt.Errorf("register receiver metrics: %w", err)
	}
	s := &Server{
		j: opts.Journal, logger: opts.Logger, now: opts.Now, gatherer: opts.Gatherer,
		reload: opts.Reload, metrics: m, bodies: newBodyBudget(),
		plans: newPlanLimiter(planBurst, planEvery), csrfKey: newCSRFKey(),
	}
	if s.console, err = newConsole(); err != nil {
		return nil, err
	}
	if err := s.SetConfig(cfg); err != nil {
		return nil, err
	}
	if opts.Runbook != nil {
		s.SetRunbook(opts.Runbook)
	}
	s.routes()
	return s, nil
}

// SetConfig makes cfg current. Its credential files are read first: a failure keeps the old
// configuration.
func (s *Server) SetConfig(cfg *config.Config) error {
	wa, err := loadCredentials(cfg.Webhook.Auth)
	if err != nil {
		return fmt.Errorf("webhook.auth: %w", err)
	}
	aa, err := loadCredentials(cfg.API.Auth)
	if err != nil {
		return fmt.Errorf("api.auth: %w", err)
	}
	co, err := newCrossOrigin(cfg.API.ExternalURL)
	if err != nil {
		return err
	}
	s.state.Store(&state{cfg: cfg, webhookAuth: wa, apiAuth: aa, crossOrigin: co})
	s.metrics.setClusters(cfg)
	return nil
}

// Config is the current configuration.
func (s *Server) Config() *config.Config { return s.state.Load().cfg }

// SetRunbook connects the runbook engine.
func (s *Server) SetRunbook(r Runbook) { s.runbook.Store(&r) }

// SetReady flips /-/ready.
func (s *Server) SetReady(ready bool) { s.ready.Store(ready) }

func (s *Server) getRunbook() Runbook {
	if r := s.runbook.Load(); r != nil {
		return *r
	}
	return nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.echo.ServeHTTP(w, r) }

func (s *Server) routes() {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{
		LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
			s.logger.Error("handler panicked", "path", c.Path(), "err", err, "stack", string(stack))
			return err
		},
	}))
	e.Use(func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			s.metrics.inFlight.Inc()
			defer s.metrics.inFlight.Dec()
			return next(c)
		}
	})
	// Every unsafe request from another site's page is refused before anything else (csrf.go).
	e.Use(s.refuseCrossOrigin)
	webhookAuth := s.requireAuth(func(st *state) *credentials { return st.webhookAuth })
	apiAuth := s.requireAuth(func(st *state) *credentials { return st.apiAuth })

	e.POST("/webhook", s.handleWebhook, s.countWebhook, webhookAuth)

	e.GET("/api/v1/openapi.yaml", s.handleOpenAPI)
	e.GET("/api/v1/incidents", s.handleListIncidents)
	e.GET("/api/v1/incidents/:id", s.handleGetIncident)
	for _, a := range incidentActions {
		e.POST("/api/v1/incidents/:id/"+a.Name, s.handleIncidentAction(a), apiAuth, requireJSON)
	}
	e.GET("/api/v1/clusters", s.handleClusters)
	for _, a := range clusterActions {
		e.POST("/api/v1/clusters/:name/"+a.Name, s.handleClusterAction(a), apiAuth, requireJSON)
	}
	// Not a mutation, but it runs commands on every node: same credentials, and rate-limited.
	e.GET("/api/v1/clusters/:name/plan", s.handlePlan, apiAuth)
	s.consoleRoutes(e, apiAuth)

	metricsHandler := promhttp.HandlerFor(s.gatherer, promhttp.HandlerOpts{EnableOpenMetrics: true})
	e.GET("/metrics", echo.WrapHandler(metricsHandler))
	e.GET("/healthz", func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
	})
	getHead := []string{http.MethodGet, http.MethodHead}
	e.Match(getHead, "/-/healthy", func(c echo.Context) error {
		return c.String(http.StatusOK, "zmy-responder is Healthy.\n")
	})
	e.Match(getHead, "/-/ready", func(c echo.Context) error {
		if !s.ready.Load() {
			return c.String(http.StatusServiceUnavailable, "Service Unavailable\n")
		}
		if err := s.j.Ping(c.Request().Context()); err != nil {
			return c.String(http.StatusServiceUnavailable, "incident store unreachable: "+err.Error()+"\n")
		}
		return c.String(http.StatusOK, "zmy-responder is Ready.\n")
	})
	e.POST("/-/reload", s.handleReload, apiAuth)
	s.echo = e
}

// errorBody is every error answer: {"error": "what is wrong"}.
type errorBody struct {
	Error string `json:"error"`
}

// handleError answers every error as JSON (so that Alertmanager's log and a human's curl both say
// what is wrong), HEAD requests without a body.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	code, msg := http.StatusInternalServerError, err.Error()
	var he *echo.HTTPError
	if errors.As(err, &he) {
		code = he.Code
		msg = fmt.Sprint(he.Message)
	}
	if code >= 500 {
		s.logger.Error("request failed", "method", c.Request().Method, "path", c.Request().URL.Path, "code", code, "err", err)
	}
	if c.Request().Method == http.MethodHead {
		err = c.NoContent(code)
	} else {
		err = c.JSON(code, errorBody{Error: msg})
	}
	if err != nil {
		s.logger.Debug("write error response", "err", err)
	}
}

func (s *Server) handleReload(c echo.Context) error {
	if s.reload == nil {
		return echo.NewHTTPError(http.StatusServiceUnavailable, "reload is not available")
	}
	if err := s.reload(); err != nil {
		return echo.NewHTTPError(http.StatusInternalServerError, "reload failed, previous configuration kept: "+err.Error())
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "success"})
}
