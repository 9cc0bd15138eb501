package receiver

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/zmyorg/zmy-responder/internal/incident"
)

// The incident console: server-rendered pages at /, /incidents/{id} and /clusters, readable
// without JavaScript; console/static/console.js polls the page it is on and swaps the parts
// marked data-live. Forms post to /incidents/{id}/<action> and /clusters/{name}/<action> with a
// CSRF token, under the same credentials as the API's mutations.

//go:embed console
var consoleFS embed.FS

// console holds the parsed pages.
type console struct {
	pages  map[string]*template.Template
	static http.Handler
}

func newConsole() (*console, error) {
	c := &console{pages: map[string]*template.Template{}}
	for _, name := range []string{"index", "incident", "clusters", "error"} {
		t, err := template.New(name).Funcs(viewFuncs).ParseFS(consoleFS, "console/layout.html", "console/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("console template %s: %w", name, err)
		}
		c.pages[name] = t
	}
	static, err := fs.Sub(consoleFS, "console/static")
	if err != nil {
		return nil, err
	}
	c.static = http.StripPrefix("/static/", http.FileServerFS(static))
	return c, nil
}

// pageData is what every page's layout reads; Page is the page's own view.
type pageData struct {
	Title   string
	User    string // the authenticated user, "" without credentials
	CSRF    string
	Refresh string // the URL console.js polls ("" when the page is not live)
	Now     time.Time
	Flash   *flash
	Page    any
}

// flash is the result of a form, shown once above the page.
type flash struct {
	OK   bool
	Text string
}

// flashCookie carries a successful form's result across its redirect (POST, 303, GET).
const flashCookie = "zmy_flash"

func (s *Server) consoleRoutes(e *echo.Echo, auth echo.MiddlewareFunc) {
	e.GET("/static/*", echo.WrapHandler(s.console.static))
	e.GET("/", s.handleIndex, auth)
	e.GET("/incidents/:id", s.handleIncidentPage, auth)
	e.GET("/clusters", s.handleClustersPage, auth)
	for _, a := range incidentActions {
		e.POST("/incidents/:id/"+a.Name, s.handleIncidentForm(a), auth)
	}
	for _, a := range clusterActions {
		e.POST("/clusters/:name/"+a.Name, s.handleClusterForm(a), auth)
	}
}

// render writes a page with the headers every console page carries: no inline script or style,
// no framing, no caching (the page is live state).
func (s *Server) render(c echo.Context, code int, page string, d pageData) error {
	d.User = authUser(c.Request())
	d.CSRF = s.csrfToken(c)
	d.Now = s.now()
	if d.Flash == nil {
		d.Flash = takeFlash(c)
	}
	var b bytes.Buffer
	if err := s.console.pages[page].ExecuteTemplate(&b, "layout", d); err != nil {
		return fmt.Errorf("render %s: %w", page, err)
	}
	h := c.Response().Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "+
		"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	return c.HTMLBlob(code, b.Bytes())
}

// renderError answers a console request that failed with a page, not JSON.
func (s *Server) renderError(c echo.Context, err error) error {
	code, msg := http.StatusInternalServerError, err.Error()
	var he *echo.HTTPError
	if errors.As(err, &he) {
		code, msg = he.Code, fmt.Sprint(he.Message)
	}
	if code >= 500 {
		s.logger.Error("console request failed", "path", c.Request().URL.Path, "code", code, "err", err)
	}
	return s.render(c, code, "error", pageData{Title: http.StatusText(code), Page: msg})
}

// authUser is the basic-auth user the request carries (api.auth or --web.config.file users).
func authUser(r *http.Request) string {
	u, _, _ := r.BasicAuth()
	return u
}

func setFlash(c echo.Context, text string) {
	c.SetCookie(&http.Cookie{Name: flashCookie, Value: url.QueryEscape(text), Path: "/", MaxAge: 60,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: c.Request().TLS != nil})
}

func takeFlash(c echo.Context) *flash {
	ck, err := c.Cookie(flashCookie)
	if err != nil || ck.Value == "" {
		return nil
	}
	c.SetCookie(&http.Cookie{Name: flashCookie, Path: "/", MaxAge: -1, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: c.Request().TLS != nil})
	text, err := url.QueryUnescape(ck.Value)
	if err != nil {
		return nil
	}
	return &flash{OK: true, Text: text}
}

func (s *Server) handleIndex(c echo.Context) error {
	ctx := c.Request().Context()
	open, err := s.j.Page(ctx, incident.PageQuery{State: incident.StateOpen, Limit: incident.MaxPageLimit})
	if err != nil {
		return s.renderError(c, apiError(err))
	}
	cursor := c.QueryParam("cursor")
	recent, err := s.j.Page(ctx, incident.PageQuery{Limit: 25, Cursor: cursor})
	if err != nil {
		return s.renderError(c, apiError(err))
	}
	clusters, clusterErr := s.clusterViews(c)
	refresh := "/"
	if cursor != "" {
		refresh = "/?cursor=" + url.QueryEscape(cursor)
	}
	return s.render(c, http.StatusOK, "index", pageData{Title: "Incidents", Refresh: refresh, Page: indexView{
		Open: open.Incidents, Recent: recent.Incidents, Next: recent.Next, Older: cursor != "",
		Clusters: clusters, ClustersError: clusterErr,
	}})
}

func (s *Server) handleClustersPage(c echo.Context) error {
	return s.render(c, http.StatusOK, "clusters", pageData{Title: "Clusters", Refresh: "/clusters",
		Page: s.clustersView(c, nil)})
}

func (s *Server) handleIncidentPage(c echo.Context) error {
	return s.incidentPage(c, http.StatusOK, nil, nil)
}

// incidentPage renders the incident; a refused form comes back with its code, its message and
// what was typed.
func (s *Server) incidentPage(c echo.Context, code int, fl *flash, typed *formInput) error {
	inc, err := s.j.Get(c.Request().Context(), c.Param("id"))
	if err != nil {
		return s.renderError(c, apiError(err))
	}
	v := s.incidentView(c, inc, typed)
	return s.render(c, code, "incident", pageData{Title: inc.ID + " " + string(inc.Step), Flash: fl,
		Refresh: "/incidents/" + url.PathEscape(inc.ID), Page: v})
}

// formInput is a submitted form's fields; Action is the path it was posted to.
type formInput struct {
	Action, By, Reason string
}

func readForm(c echo.Context) (formInput, string) {
	return formInput{Action: c.Request().URL.Path, By: strings.TrimSpace(c.FormValue("by")),
		Reason: strings.TrimSpace(c.FormValue("reason"))}, c.FormValue("csrf")
}

// formDecision checks a form's token and fields: nil when the decision may go on.
func (s *Server) formDecision(c echo.Context, in formInput, token, label string, reasonOptional bool) (incident.Approval, *flash, int) {
	if err := s.checkCSRF(c, token); err != nil {
		code, msg := errorCode(err)
		return incident.Approval{}, &flash{Text: label + " refused: " + msg}, code
	}
	switch {
	case in.Reason == "" && reasonOptional && in.By == "":
		return incident.Approval{}, &flash{Text: label + " refused: say who you are (by); it is recorded"}, http.StatusBadRequest
	case in.Reason == "" && reasonOptional:
	case in.Reason == "" && in.By == "":
		return incident.Approval{}, &flash{Text: label + " refused: who you are and a reason are required; both are recorded"}, http.StatusBadRequest
	case in.Reason == "":
		return incident.Approval{}, &flash{Text: label + " refused: a reason is required; it is recorded with your name"}, http.StatusBadRequest
	case in.By == "":
		return incident.Approval{}, &flash{Text: label + " refused: say who you are (by); it is recorded with the reason"}, http.StatusBadRequest
	}
	d, err := s.decisionOf(decision{By: in.By, Reason: in.Reason}, reasonOptional)
	if err != nil {
		return incident.Approval{}, &flash{Text: label + " refused: " + err.Error()}, http.StatusBadRequest
	}
	return d, nil, 0
}

func (s *Server) handleIncidentForm(a incidentAction) echo.HandlerFunc {
	return func(c echo.Context) error {
		in, token := readForm(c)
		d, fl, code := s.formDecision(c, in, token, a.Label, a.reasonOptional)
		if fl != nil {
			return s.incidentPage(c, code, fl, &in)
		}
		r, err := s.doIncidentAction(c.Request().Context(), a, c.Param("id"), d)
		if err != nil {
			code, msg := errorCode(err)
			return s.incidentPage(c, code, &flash{Text: a.Label + " refused: " + msg}, &in)
		}
		setFlash(c, fmt.Sprintf("%s: done. %s is at step %s. %s", a.Label, r.ID, r.Step, r.Message))
		return c.Redirect(http.StatusSeeOther, "/incidents/"+url.PathEscape(r.ID))
	}
}

func (s *Server) handleClusterForm(a clusterAction) echo.HandlerFunc {
	return func(c echo.Context) error {
		in, token := readForm(c)
		d, fl, code := s.formDecision(c, in, token, a.Label+" "+c.Param("name"), false)
		if fl == nil {
			r, err := s.doClusterAction(c.Request().Context(), a, c.Param("name"), d)
			if err == nil {
				setFlash(c, fmt.Sprintf("%s %s: done. %s", a.Label, r.Cluster, r.Message))
				return c.Redirect(http.StatusSeeOther, "/clusters")
			}
			var msg string
			code, msg = errorCode(err)
			fl = &flash{Text: a.Label + " " + c.Param("name") + " refused: " + msg}
		}
		return s.render(c, code, "clusters", pageData{Title: "Clusters", Refresh: "/clusters", Flash: fl,
			Page: s.clustersView(c, &in)})
	}
}

// errorCode is the status and message an API error would have answered.
func errorCode(err error) (int, string) {
	var he *echo.HTTPError
	if errors.As(err, &he) {
		return he.Code, fmt.Sprint(he.Message)
	}
	return http.StatusInternalServerError, err.Error()
}
