package api

import (
	_ "embed" // the OpenAPI document
	"net/http"
)

// openAPIDocument is the OpenAPI 3.1 description of every route.
//
//go:embed openapi.yaml
var openAPIDocument []byte

// OpenAPI returns the OpenAPI 3.1 document (YAML) describing the API.
func OpenAPI() []byte { return append([]byte(nil), openAPIDocument...) }

// serveOpenAPI answers GET /api/openapi.yaml.
func (a *API) serveOpenAPI(w http.ResponseWriter, _ *http.Request, _ *principal) error {
	w.Header().Set("Content-Type", "application/yaml; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(openAPIDocument)
	return nil
}
