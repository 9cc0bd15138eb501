package receiver

import (
	_ "embed"
	"net/http"

	"github.com/labstack/echo/v4"
)

// OpenAPI is the OpenAPI 3 description of /api/v1, served at GET /api/v1/openapi.yaml. Tests
// validate the daemon's real answers against it, and zmyrtool and the console use only what it
// describes.
//
//go:embed openapi.yaml
var OpenAPI []byte

func (s *Server) handleOpenAPI(c echo.Context) error {
	return c.Blob(http.StatusOK, "application/yaml", OpenAPI)
}
