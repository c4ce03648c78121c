package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/fleetsync/fleetsync/pkg/fleet"
	"github.com/fleetsync/fleetsync/pkg/reconcile"
	"github.com/fleetsync/fleetsync/pkg/render"
)

// renderFlags are the flags of `fleetsync render`.
type renderFlags struct {
	repo             string
	source           sourceFlags
	clusters         []string
	apps             []string
	out              string
	output           string
	allowRemoteBases bool
	kubeVersion      string
	renderTimeout    time.Duration
	offline          bool
	images           imageFlags
}

func (f *renderFlags) BindFlags(fs *pflag.FlagSet) {
	fs.StringVar(&f.repo, "repo", "", "fleet repo: a directory (plain or git) or a git URL")
	f.source.BindFlags(fs)
	fs.StringArrayVar(&f.clusters, "cluster", nil, "render only this cluster (repeatable)")
	fs.StringArrayVar(&f.apps, "app", nil, "render only this app (repeatable)")
	fs.StringVar(&f.out, "out", "", "write OUT/<cluster>/<app>.yaml instead of one stream to stdout")
	fs.StringVarP(&f.output, "output", "o", "yaml", "output format: yaml or json")
	fs.BoolVar(&f.allowRemoteBases, "allow-remote-bases", false, "allow remote (URL) resources in kustomizations")
	fs.StringVar(&f.kubeVersion, "kube-version", render.DefaultKubeVersion, "Kubernetes version Helm renders with when a cluster's is unknown")
	fs.DurationVar(&f.renderTimeout, "render-timeout", render.DefaultRenderTimeout, "how long one chart's templates may run before the pair fails")
	fs.BoolVar(&f.offline, "offline", false, "do not resolve images: references of mirrored apps stay as written (no registry is contacted)")
	f.images.BindFlags(fs)
}

func newRenderCmd() *cobra.Command {
	f := &renderFlags{}
	cmd := &cobra.Command{
		Use:   "render --repo DIR|URL [--ref R] [--cluster C]... [--app A]... [--out DIR] [-o yaml|json]",
		Short: "Render the manifests each cluster should run",
		Long: "render builds every (cluster, app) pair of the fleet repo (Kustomize and Helm, with " +
			"customizations, storage mapping and scale policies) and writes OUT/<cluster>/<app>.yaml, " +
			"or one stream to stdout. Errors are listed on stderr; the exit status is 1 when any pair failed.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runRender(cmd, f)
		},
	}
	f.BindFlags(cmd.Flags())
	return cmd
}

func runRender(cmd *cobra.Command, f *renderFlags) error {
	if f.repo == "" {
		return errors.New("--repo is required")
	}
	if f.output != "yaml" && f.output != "json" {
		return fmt.Errorf("-o %s: want yaml or json", f.output)
	}
	ctx := cmd.Context()
	batchGC()
	render.Preload()
	repo, closeRepo, err := f.source.load(ctx, f.repo)
	if err != nil {
		return &exitError{code: 1, err: fmt.Errorf("load %s: %w", f.repo, err)}
	}
	defer closeRepo()
	r := render.New(render.Options{AllowRemoteBases: f.allowRemoteBases, DefaultKubeVersion: f.kubeVersion, RenderTimeout: f.renderTimeout})
	res := r.Render(ctx, repo, render.Selection{Clusters: f.clusters, Apps: f.apps})
	if err := rewriteImages(ctx, cmd.ErrOrStderr(), f.offline, &f.images, repo, res); err != nil {
		return &exitError{code: 1, err: err}
	}
	if f.out != "" {
		err = writeRenderDir(f.out, f.output, res)
	} else {
		err = writeRenderStream(cmd.OutOrStdout(), f.output, res)
	}
	if err != nil {
		return err
	}
	failed := 0
	for _, c := range res.Clusters {
		for _, a := range c.Apps {
			for _, w := range a.Warnings {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s/%s: %s\n", c.Cluster, a.App, w)
			}
			if a.Err != nil {
				failed++
				fmt.Fprintln(cmd.ErrOrStderr(), "error:", a.Err)
			}
		}
	}
	if failed > 0 {
		fmt.Fprintf(cmd.ErrOrStderr(), "%d pair(s) failed to render\n", failed)
		return &exitError{code: 1}
	}
	return nil
}

func encodeObjects(format string, objs []*unstructured.Unstructured) ([]byte, error) {
	if format == "json" {
		return render.JSON(objs)
	}
	return render.YAML(objs)
}

// encodings encodes each distinct list of objects once: pairs whose
// finished objects are the same (the renderer shares them between clusters
// whose per-cluster steps give the same result) share the bytes.
type encodings struct {
	encode func([]*unstructured.Unstructured) ([]byte, error)
	mu     sync.Mutex
	m      map[objsID]*encoding
}

// objsID identifies a list of objects by its first element and length.
type objsID struct {
	first *unstructured.Unstructured
	n     int
}

type encoding struct {
	once sync.Once
	b    []byte
	err  error
}

func newEncodings(encode func([]*unstructured.Unstructured) ([]byte, error)) *encodings {
	return &encodings{encode: encode, m: map[objsID]*encoding{}}
}

func (e *encodings) get(objs []*unstructured.Unstructured) ([]byte, error) {
	id := objsID{n: len(objs)}
	if len(objs) > 0 {
		id.first = objs[0]
	}
	e.mu.Lock()
	enc, ok := e.m[id]
	if !ok {
		enc = &encoding{}
		e.m[id] = enc
	}
	e.mu.Unlock()
	enc.once.Do(func() { enc.b, enc.err = e.encode(objs) })
	return enc.b, enc.err
}

// renderedPairs lists the pairs that rendered, in output order.
func renderedPairs(res *render.Result) []pairRef {
	var l []pairRef
	for _, c := range res.Clusters {
		for i := range c.Apps {
			if c.Apps[i].Err == nil {
				l = append(l, pairRef{c.Cluster, &c.Apps[i]})
			}
		}
	}
	return l
}

type pairRef struct {
	cluster string
	app     *render.AppResult
}

// parallel runs fn(i) for i in [0, n), at most workers at a time, and
// returns the error of the lowest i that failed.
func parallel(n, workers int, fn func(i int) error) error {
	errs := make([]error, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Go(func() {
			for i := range next {
				errs[i] = fn(i)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// writeWorkers bounds the cluster folders written at once: writing is mostly
// waiting for the filesystem.
func writeWorkers() int { return 4 * runtime.GOMAXPROCS(0) }

// writeRenderDir writes OUT/<cluster>/<app>.yaml (.json) for every pair that
// rendered, readable by the user only (rendered Secrets may be among them).
// Identical outputs are encoded once; cluster folders are written in
// parallel, each by one worker: files created side by side in one folder
// wait for each other on the folder's lock, in different folders they need
// not.
func writeRenderDir(out, format string, res *render.Result) error {
	pairs := renderedPairs(res)
	var clusters [][]pairRef
	for i, p := range pairs {
		if i == 0 || p.cluster != pairs[i-1].cluster {
			clusters = append(clusters, nil)
		}
		clusters[len(clusters)-1] = append(clusters[len(clusters)-1], p)
	}
	encs := newEncodings(func(objs []*unstructured.Unstructured) ([]byte, error) { return encodeObjects(format, objs) })
	return parallel(len(clusters), writeWorkers(), func(i int) error {
		dir := filepath.Join(out, clusters[i][0].cluster)
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return err
		}
		var first error
		for _, p := range clusters[i] {
			b, err := encs.get(p.app.Objects)
			if err != nil {
				err = fmt.Errorf("%s/%s: %w", p.cluster, p.app.App, err)
			} else {
				err = os.WriteFile(filepath.Join(dir, p.app.App+"."+format), b, 0o600)
			}
			if first == nil {
				first = err
			}
		}
		return first
	})
}

// renderedPair is one pair in `render -o json` output.
type renderedPair struct {
	Cluster string           `json:"cluster"`
	App     string           `json:"app"`
	Objects []map[string]any `json:"objects"`
}

// writeRenderStream writes every pair that rendered to w: in YAML a
// "# cluster/app" comment before each pair's documents; in JSON an array of
// {cluster, app, objects}. Identical outputs are encoded once, distinct ones
// in parallel.
func writeRenderStream(w io.Writer, format string, res *render.Result) error {
	pairs := renderedPairs(res)
	encode := render.YAML
	if format == "json" {
		// The objects of a pair as printData indents them inside the array.
		encode = func(objs []*unstructured.Unstructured) ([]byte, error) {
			l := make([]map[string]any, len(objs))
			for i, o := range objs {
				l[i] = o.Object
			}
			return json.MarshalIndent(l, "    ", "  ")
		}
	}
	encs := newEncodings(encode)
	// Encode first, in parallel; an error is reported below, with the pair.
	_ = parallel(len(pairs), runtime.GOMAXPROCS(0), func(i int) error {
		_, err := encs.get(pairs[i].app.Objects)
		return err
	})
	bw := bufio.NewWriterSize(w, 1<<16)
	if format == "json" {
		if err := writeJSONStream(bw, pairs, encs); err != nil {
			return err
		}
		return bw.Flush()
	}
	var head []byte
	for i, p := range pairs {
		b, err := encs.get(p.app.Objects)
		if err != nil {
			return fmt.Errorf("%s/%s: %w", p.cluster, p.app.App, err)
		}
		head = head[:0]
		if i > 0 {
			head = append(head, "---\n"...)
		}
		head = append(append(append(append(head, "# "...), p.cluster...), '/'), p.app.App...)
		if err := writeParts(bw, append(head, '\n'), b); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// writeJSONStream writes what printData(w, "json", []renderedPair{...})
// writes, with each pair's objects encoded by encs.
func writeJSONStream(w io.Writer, pairs []pairRef, encs *encodings) error {
	if len(pairs) == 0 {
		_, err := io.WriteString(w, "[]\n")
		return err
	}
	var head []byte
	for i, p := range pairs {
		b, err := encs.get(p.app.Objects)
		if err != nil {
			return fmt.Errorf("%s/%s: %w", p.cluster, p.app.App, err)
		}
		head = head[:0]
		if i == 0 {
			head = append(head, "[\n"...)
		}
		head = append(head, "  {\n    \"cluster\": "...)
		if head, err = appendJSON(head, p.cluster); err != nil {
			return err
		}
		head = append(head, ",\n    \"app\": "...)
		if head, err = appendJSON(head, p.app.App); err != nil {
			return err
		}
		head = append(head, ",\n    \"objects\": "...)
		tail := "\n  },\n"
		if i == len(pairs)-1 {
			tail = "\n  }\n]\n"
		}
		if err := writeParts(w, head, b, []byte(tail)); err != nil {
			return err
		}
	}
	return nil
}

func appendJSON(b []byte, s string) ([]byte, error) {
	j, err := json.Marshal(s)
	return append(b, j...), err
}

// writeParts writes each part in turn.
func writeParts(w io.Writer, parts ...[]byte) error {
	for _, p := range parts {
		if _, err := w.Write(p); err != nil {
			return err
		}
	}
	return nil
}

// rewriteImages pins the images of mirrored apps and rewrites their references
// as apply would (resolved at the source), or, with --offline, says that they
// are left as written.
func rewriteImages(ctx context.Context, stderr io.Writer, offline bool, f *imageFlags, repo *fleet.Repo, res *render.Result) error {
	if offline {
		fmt.Fprintln(stderr, "--offline: image references of mirrored apps are as written (not resolved to digests, not rewritten to the mirrors)")
		return nil
	}
	opts, err := f.options()
	if err != nil {
		return err
	}
	reconcile.RewriteImages(ctx, repo, res, *opts)
	return nil
}
