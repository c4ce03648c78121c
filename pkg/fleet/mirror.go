package fleet

import (
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// checkMirror checks a cluster's registry mirror: "<registry host[:port]>/<path>",
// with no tag or digest. It returns the problem message, or "".
func checkMirror(mirror string, insecure bool) string {
	if mirror == "" {
		return "required: the registry and repository prefix images are copied to, e.g. registry.example:5000/fleet"
	}
	host, repo, ok := strings.Cut(mirror, "/")
	if !ok || repo == "" || (host != "localhost" && !strings.ContainsAny(host, ".:")) {
		return fmt.Sprintf("%q must start with a registry host (with a dot or a port, or localhost) followed by a repository path, e.g. registry.example:5000/fleet", mirror)
	}
	opts := []name.Option{name.StrictValidation}
	if insecure {
		opts = append(opts, name.Insecure)
	}
	if _, err := name.NewRepository(mirror, opts...); err != nil {
		return fmt.Sprintf("%q is not a valid registry repository: %v", mirror, err)
	}
	return ""
}
