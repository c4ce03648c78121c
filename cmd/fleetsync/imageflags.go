package main

import (
	"fmt"
	"strings"

	"github.com/spf13/pflag"

	"github.com/fleetsync/fleetsync/pkg/imagesync"
	"github.com/fleetsync/fleetsync/pkg/reconcile"
)

// imageFlags say how registries are reached for image mirroring.
type imageFlags struct {
	registryConfig   string
	insecureRegistry []string
	podTemplatePaths []string
}

// BindFlags adds the registry flags.
func (f *imageFlags) BindFlags(fs *pflag.FlagSet) {
	fs.StringVar(&f.registryConfig, "registry-config", "", "Docker config file with registry credentials (default $DOCKER_CONFIG/config.json, ~/.docker/config.json)")
	fs.StringArrayVar(&f.insecureRegistry, "insecure-registry", nil, "registry host[:port] that may be used over plain HTTP or unverified TLS (repeatable; mirrors say so in their Cluster's spec.registry.insecure)")
	fs.StringArrayVar(&f.podTemplatePaths, "pod-template-path", nil, "where a custom kind keeps its pod spec, for image mirroring: group/Kind=field.path (repeatable), e.g. argoproj.io/Rollout=spec.template.spec")
}

// options turns the flags into reconcile.ImageOptions.
func (f *imageFlags) options() (*reconcile.ImageOptions, error) {
	o := &reconcile.ImageOptions{InsecureRegistries: f.insecureRegistry, PodSpecPaths: imagesync.PodSpecPaths{}}
	for _, p := range f.podTemplatePaths {
		kind, path, ok := strings.Cut(p, "=")
		if !ok || kind == "" || path == "" || strings.Contains(path, " ") {
			return nil, fmt.Errorf("--pod-template-path %q: want group/Kind=field.path, e.g. argoproj.io/Rollout=spec.template.spec", p)
		}
		o.PodSpecPaths[kind] = append(o.PodSpecPaths[kind], strings.Split(path, "."))
	}
	if f.registryConfig != "" {
		kc, err := imagesync.KeychainFromFile(f.registryConfig)
		if err != nil {
			return nil, fmt.Errorf("--registry-config: %w", err)
		}
		o.Keychain = kc
	}
	return o, nil
}
