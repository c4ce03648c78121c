// Package gitserver serves git repositories over smart HTTP with the git CLI.
package gitserver

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cgi" //nolint:gosec // G504 is about Go < 1.6.3 (httpoxy); the handler runs git http-backend on loopback
	"os/exec"
	"path/filepath"
	"strings"
)

// HTTPHandler serves the git repositories under root over smart HTTP with
// the git CLI's http-backend (read only: pushes are refused), as a real git
// server does. The daemon's tests and `make demo` serve the fleet repo with
// it on loopback.
func HTTPHandler(ctx context.Context, root string) (http.Handler, error) {
	out, err := exec.CommandContext(ctx, "git", "--exec-path").Output()
	if err != nil {
		return nil, fmt.Errorf("git --exec-path: %w (is git installed?)", err)
	}
	return &cgi.Handler{
		Path:   filepath.Join(strings.TrimSpace(string(out)), "git-http-backend"),
		Env:    []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1"},
		Stderr: io.Discard,
	}, nil
}
