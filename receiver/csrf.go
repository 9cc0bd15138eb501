package receiver

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"mime"
	"net/http"
	"net/url"

	"github.com/labstack/echo/v4"
)

// Cross-site request forgery: with no credentials configured (the loopback default), or with a
// browser that remembers basic auth, any web page the operator visits could otherwise post an
// approve or a pause. Three defences, each for one kind of request:
//   - every unsafe request (webhook, API, console, reload) from another origin is refused, as
//     the browser reports it (Sec-Fetch-Site, or Origin against Host); Alertmanager and
//     zmyrtool send neither header and pass;
//   - API mutations must be application/json, which a cross-site HTML form cannot send;
//   - console forms carry a token bound to a cookie that only this origin can read.

// newCrossOrigin is the origin check for a configuration: api.external_url is trusted as well,
// for a reverse proxy that rewrites Host.
func newCrossOrigin(externalURL string) (*http.CrossOriginProtection, error) {
	co := http.NewCrossOriginProtection()
	if externalURL != "" {
		u, err := url.Parse(externalURL)
		if err != nil {
			return nil, fmt.Errorf("api.external_url: %w", err)
		}
		if err := co.AddTrustedOrigin(u.Scheme + "://" + u.Host); err != nil {
			return nil, fmt.Errorf("api.external_url as a trusted origin: %w", err)
		}
	}
	return co, nil
}

// refuseCrossOrigin answers 403 to an unsafe request another origin's page made.
func (s *Server) refuseCrossOrigin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := s.state.Load().crossOrigin.Check(c.Request()); err != nil {
			return echo.NewHTTPError(http.StatusForbidden,
				"cross-origin request refused: a page of another site may not change this responder ("+err.Error()+")")
		}
		return next(c)
	}
}

// requireJSON answers 415 to an API mutation whose body is not declared as JSON.
func requireJSON(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		ct := c.Request().Header.Get(echo.HeaderContentType)
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != echo.MIMEApplicationJSON {
			return echo.NewHTTPError(http.StatusUnsupportedMediaType,
				fmt.Sprintf("Content-Type %q: want application/json", ct))
		}
		return next(c)
	}
}

// csrfCookie holds a random value per browser; a form's token is its HMAC under the process's
// key, so a page elsewhere can neither read nor compute it.
const csrfCookie = "zmy_csrf"

func newCSRFKey() []byte {
	k := make([]byte, 32)
	_, _ = rand.Read(k) // crypto/rand.Read never fails (it panics on an unusable system source)
	return k
}

func (s *Server) csrfFor(cookie string) string {
	m := hmac.New(sha256.New, s.csrfKey)
	m.Write([]byte(cookie))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// csrfToken is the token for the forms of the page being rendered; it sets the cookie first if
// the browser has none.
func (s *Server) csrfToken(c echo.Context) string {
	if ck, err := c.Cookie(csrfCookie); err == nil && len(ck.Value) >= 16 {
		return s.csrfFor(ck.Value)
	}
	v := make([]byte, 24)
	_, _ = rand.Read(v)
	value := base64.RawURLEncoding.EncodeToString(v)
	c.SetCookie(&http.Cookie{Name: csrfCookie, Value: value, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: c.Request().TLS != nil})
	return s.csrfFor(value)
}

// checkCSRF verifies a form's token against the browser's cookie.
func (s *Server) checkCSRF(c echo.Context, token string) error {
	ck, err := c.Cookie(csrfCookie)
	if err != nil || token == "" || !hmac.Equal([]byte(token), []byte(s.csrfFor(ck.Value))) {
		return echo.NewHTTPError(http.StatusForbidden,
			"the form's security token is missing or stale (the responder may have restarted): reload the page and submit again")
	}
	return nil
}
