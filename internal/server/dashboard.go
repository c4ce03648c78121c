package server

import (
	_ "embed" // the dashboard's files
	"net/http"
)

// The dashboard: one page, its stylesheet, script and icon, served from the
// binary. Nothing else is loaded; the script reads /api/v1/status.
var (
	//go:embed dashboard/index.html
	indexHTML []byte
	//go:embed dashboard/style.css
	styleCSS []byte
	//go:embed dashboard/app.js
	appJS []byte
	//go:embed dashboard/favicon.svg
	faviconSVG []byte
)

// registerDashboard serves the page at / and its files under /assets/. Any
// other path is 404 (no directory listing).
func registerDashboard(mux *http.ServeMux) {
	mux.Handle("GET /{$}", staticFile("text/html; charset=utf-8", indexHTML))
	mux.Handle("GET /assets/style.css", staticFile("text/css; charset=utf-8", styleCSS))
	mux.Handle("GET /assets/app.js", staticFile("text/javascript; charset=utf-8", appJS))
	mux.Handle("GET /assets/favicon.svg", staticFile("image/svg+xml", faviconSVG))
}

// staticFile serves body as ctype. The browser revalidates on each load so
// that an upgraded daemon's page never runs an older cached script.
func staticFile(ctype string, body []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", ctype)
		w.Header().Set("Cache-Control", "no-cache")
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(body)
	})
}
