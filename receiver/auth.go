package receiver

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/zmyorg/zmy-responder/internal/config"
)

// credentials are the secrets one group of endpoints accepts, read from their files at load and
// reload time (SIGHUP rotates them). Only SHA-256 digests are kept: comparing fixed-length digests
// in constant time leaks neither the secret nor its length.
type credentials struct {
	token    *[sha256.Size]byte
	user     *[sha256.Size]byte
	password *[sha256.Size]byte
}

func loadCredentials(a config.AuthConfig) (*credentials, error) {
	if a.BearerTokenFile == "" && a.BasicAuth == nil {
		return nil, nil
	}
	c := &credentials{}
	if a.BearerTokenFile != "" {
		tok, err := readSecret(a.BearerTokenFile)
		if err != nil {
			return nil, fmt.Errorf("bearer token: %w", err)
		}
		c.token = digest(tok)
	}
	if b := a.BasicAuth; b != nil {
		pw, err := readSecret(b.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("basic auth password: %w", err)
		}
		c.user, c.password = digest(b.Username), digest(pw)
	}
	return c, nil
}

// readSecret reads a secret file; a trailing newline (as `echo secret > file` writes) is not
// part of the secret.
func readSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read secret file: %w", err)
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", fmt.Errorf("secret file %s is empty", path)
	}
	return s, nil
}

func digest(s string) *[sha256.Size]byte {
	d := sha256.Sum256([]byte(s))
	return &d
}

func equal(want *[sha256.Size]byte, got string) bool {
	d := sha256.Sum256([]byte(got))
	return subtle.ConstantTimeCompare(want[:], d[:]) == 1
}

// allows reports whether the request carries one of the configured credentials. nil credentials
// (nothing configured) allow everything.
func (c *credentials) allows(r *http.Request) bool {
	if c == nil {
		return true
	}
	h := r.Header.Get("Authorization")
	if c.token != nil {
		if scheme, tok, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "Bearer") && equal(c.token, tok) {
			return true
		}
	}
	if c.user != nil {
		if u, p, ok := r.BasicAuth(); ok {
			// Both compared, always: which half was wrong must not show in the timing.
			uok, pok := equal(c.user, u), equal(c.password, p)
			return uok && pok
		}
	}
	return false
}

func (c *credentials) challenge() string {
	if c.user != nil {
		return `Basic realm="zmy-responder"`
	}
	return `Bearer realm="zmy-responder"`
}

// requireAuth guards a mutating endpoint with the credentials pick returns from the current
// configuration.
func (s *Server) requireAuth(pick func(*state) *credentials) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			creds := pick(s.state.Load())
			if creds.allows(c.Request()) {
				return next(c)
			}
			c.Response().Header().Set("WWW-Authenticate", creds.challenge())
			return echo.NewHTTPError(http.StatusUnauthorized, "missing or invalid credentials")
		}
	}
}
