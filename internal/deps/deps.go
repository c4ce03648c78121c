// Package deps pins the project's chosen libraries while the packages that use them are written.
// Temporary: removed once every library is imported by real code.
package deps

import (
	_ "github.com/go-git/go-git/v5"
	_ "github.com/google/go-cmp/cmp"
	_ "github.com/google/go-containerregistry/pkg/v1/remote"
	_ "github.com/santhosh-tekuri/jsonschema/v6"
	_ "github.com/invopop/jsonschema"
	_ "github.com/spf13/cobra"
	_ "helm.sh/helm/v3/pkg/action"
	_ "k8s.io/client-go/dynamic"
	_ "k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	_ "sigs.k8s.io/cli-utils/pkg/kstatus/status"
	_ "sigs.k8s.io/kustomize/api/krusty"
	_ "sigs.k8s.io/kustomize/kyaml/filesys"
	_ "sigs.k8s.io/yaml"
	_ "github.com/ProtonMail/go-crypto/openpgp"
)
