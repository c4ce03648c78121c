package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/fleetsync/fleetsync/internal/daemon"
	"github.com/fleetsync/fleetsync/pkg/hub"
	"github.com/fleetsync/fleetsync/pkg/reconcile"
)

// defaultServer is where `fleetsync run` listens unless told otherwise.
const defaultServer = "http://127.0.0.1:8080"

type statusOptions struct {
	server        string
	hubKubeconfig string
	output        string
	timeout       time.Duration
}

func newStatusCmd() *cobra.Command {
	var o statusOptions
	cmd := &cobra.Command{
		Use:   "status [--server URL | --hub-kubeconfig H] [-o table|json|yaml]",
		Short: "The daemon's view: source revision, clusters, apps per cluster, rollouts",
		Long: `status reads GET /api/v1/status from a running fleetsync daemon and prints the
fleet repo's revision in force (and any fetch or validation error), each cluster's
heartbeat (up, version, nodes, last seen), each app on each cluster (revision, sync
state, health, drifted objects) and each app's rollout (phase, wave, reason).
With --hub-kubeconfig it reads the same view of a fleet of agents from their hub
(read-only; each agent's state there, its cluster down when the state is stale).
Exit status 0; 1 when the daemon or the hub cannot be reached or answers with an error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runStatus(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.server, "server", defaultServer, "the daemon's HTTP address (its --listen)")
	fs.StringVar(&o.hubKubeconfig, "hub-kubeconfig", "", "read the agents' states from this hub instead of a daemon (its current context)")
	fs.StringVarP(&o.output, "output", "o", "table", "output: table, json or yaml")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "how long to wait for the daemon's answer")
	return cmd
}

func runStatus(ctx context.Context, o statusOptions, w io.Writer) error {
	if o.output != "table" && o.output != "json" && o.output != "yaml" {
		return &exitError{code: 1, err: fmt.Errorf("-o %s: want table, json or yaml", o.output)}
	}
	var st *daemon.Status
	var err error
	if o.hubKubeconfig != "" {
		st, err = hubStatus(ctx, o.hubKubeconfig, o.timeout)
	} else {
		st, err = fetchStatus(ctx, o.server, o.timeout)
	}
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	if o.output != "table" {
		if err := printData(w, o.output, st); err != nil {
			return &exitError{code: 1, err: err}
		}
		return nil
	}
	printStatus(w, st, time.Now())
	return nil
}

// hubStatus reads the agents' states from the hub once.
func hubStatus(ctx context.Context, kubeconfig string, timeout time.Duration) (*daemon.Status, error) {
	h, err := connectHub(kubeconfig)
	if err != nil {
		return nil, err
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	agents, warnings, err := h.Agents(ctx)
	if err != nil {
		return nil, err
	}
	st := daemon.HubStatus(agents, warnings, time.Now())
	return &st, nil
}

// connectHub reaches the hub API server of a kubeconfig ("": the cluster
// the process runs in).
func connectHub(kubeconfig string) (*hub.Hub, error) {
	if kubeconfig == "" {
		cfg, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("not in a cluster (%w): give --hub-kubeconfig", err)
		}
		return hub.New(cfg)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err == nil {
		var h *hub.Hub
		if h, err = hub.New(cfg); err == nil {
			return h, nil
		}
	}
	return nil, fmt.Errorf("--hub-kubeconfig %s: %w", kubeconfig, err)
}

// fetchStatus GETs /api/v1/status from the daemon at server.
func fetchStatus(ctx context.Context, server string, timeout time.Duration) (*daemon.Status, error) {
	base, err := url.Parse(strings.TrimRight(server, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("--server %s: want an http or https URL such as %s", redactServer(server), defaultServer)
	}
	endpoint := base.JoinPath("api", "v1", "status")
	shown := endpoint.Redacted()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", shown, err)
	}
	req.Header.Set("Accept", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // the URL is said once, redacted
		}
		return nil, fmt.Errorf("cannot reach the fleetsync daemon at %s: %w (is `fleetsync run` listening there? see --server)", shown, err)
	}
	defer func() { _ = res.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("GET %s: read the answer: %w", shown, err)
	}
	if res.StatusCode != http.StatusOK {
		msg := strings.TrimSpace(string(body))
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		if len(msg) > 300 {
			msg = msg[:300] + "..."
		}
		return nil, fmt.Errorf("GET %s: %s: %s", shown, res.Status, msg)
	}
	var st daemon.Status
	if err := json.Unmarshal(body, &st); err != nil {
		return nil, fmt.Errorf("GET %s: the answer is not a fleetsync status (is this a fleetsync daemon?): %w", shown, err)
	}
	return &st, nil
}

// redactServer hides a password given in a --server URL.
func redactServer(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Redacted()
	}
	if _, host, ok := strings.Cut(s, "@"); ok {
		return "xxxxx@" + host // userinfo in a string that is no URL
	}
	return s
}

// printStatus prints the source line, then the clusters, the apps matrix
// (one column per cluster) and the rollouts as tables.
func printStatus(w io.Writer, st *daemon.Status, now time.Time) {
	src := st.Source
	line := "Source: " + orDash(src.URL)
	if src.Branch != "" {
		line += " (" + src.Branch + ")"
	}
	line += " at " + orDash(shortCommit(src.Revision))
	if src.Fetched != "" && src.Fetched != src.Revision {
		line += ", newest fetched " + shortCommit(src.Fetched) + " not in force"
	}
	if st.Mode == "hub" {
		line = fmt.Sprintf("Hub view of %d agent(s): %s at %s", len(st.Clusters), orDash(src.URL), orDash(shortCommit(src.Revision)))
	} else {
		line += ", fetched " + ago(now, src.LastFetch)
	}
	if !st.LastReconcile.IsZero() {
		line += ", reconciled " + ago(now, st.LastReconcile) + " in " + strconv.FormatFloat(st.ReconcileSeconds, 'f', 1, 64) + "s"
	}
	fmt.Fprintln(w, line)
	if src.Error != "" {
		fmt.Fprintln(w, "Source error: "+oneLine(src.Error))
	}
	if sh := st.Shard; sh != nil {
		fmt.Fprintf(w, "Shard: replica %s of %d (%s), holding %s\n", sh.Identity, len(sh.Replicas), strings.Join(sh.Replicas, ", "), orDash(strings.Join(sh.Clusters, ", ")))
	}

	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tUP\tVERSION\tNODES\tLAST-SEEN\tERROR")
	for _, c := range st.Clusters {
		up := "yes"
		if !c.Up {
			up = "no"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%s\t%s\n", c.Name, up, orDash(c.Version), c.NodesReady, c.Nodes, ago(now, c.LastSeen), oneLine(c.Error))
	}
	_ = tw.Flush()

	if apps := appNames(st.Clusters); len(apps) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprint(tw, "APP")
		for _, c := range st.Clusters {
			fmt.Fprint(tw, "\t"+c.Name)
		}
		fmt.Fprintln(tw)
		for _, app := range apps {
			fmt.Fprint(tw, app)
			for _, c := range st.Clusters {
				fmt.Fprint(tw, "\t"+appCell(c, app))
			}
			fmt.Fprintln(tw)
		}
		_ = tw.Flush()
	}

	if len(st.Rollouts) > 0 {
		fmt.Fprintln(w)
		printRolloutSummary(w, st.Rollouts)
	}
}

// appCell is one app on one cluster: "abc1234 Synced/Healthy", "- OutOfSync",
// with "drift:N" when objects drifted; "" where the app does not go.
func appCell(c daemon.ClusterStatus, app string) string {
	for _, a := range c.Apps {
		if a.Name != app {
			continue
		}
		s := orDash(shortCommit(a.Revision)) + " " + a.Sync
		if a.Health != "" && (a.Revision != "" || a.Health != daemon.HealthUnknown) {
			s += "/" + a.Health
		}
		if a.Drifted > 0 {
			s += " drift:" + strconv.Itoa(a.Drifted)
		}
		return s
	}
	return ""
}

func printRolloutSummary(w io.Writer, rolls []reconcile.AppRollout) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "APP\tPHASE\tWAVE\tTARGET\tREASON")
	for _, r := range rolls {
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%s\t%s\n", r.App, r.Phase, min(r.Wave+1, max(r.Waves, 1)), r.Waves, orDash(shortCommit(r.Target)), oneLine(r.Reason))
	}
	_ = tw.Flush()
}

// appNames are the apps on any cluster, sorted (each cluster's are).
func appNames(clusters []daemon.ClusterStatus) []string {
	seen := map[string]bool{}
	var names []string
	for _, c := range clusters {
		for _, a := range c.Apps {
			if !seen[a.Name] {
				seen[a.Name] = true
				names = append(names, a.Name)
			}
		}
	}
	slices.Sort(names)
	return names
}

// shortCommit is the 7-character form of a commit sha, as git shows it.
func shortCommit(rev string) string {
	if len(rev) >= 12 && strings.Trim(rev, "0123456789abcdef") == "" {
		return rev[:7]
	}
	return rev
}

// ago says how long before now t was: "12s ago", "5m ago", "3h ago", "2d ago";
// "never" for the zero time.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t).Round(time.Second)
	switch {
	case d < time.Second:
		return "just now"
	case d < time.Minute:
		return strconv.Itoa(int(d.Seconds())) + "s ago"
	case d < time.Hour:
		return strconv.Itoa(int(d.Minutes())) + "m ago"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d.Hours())) + "h ago"
	default:
		return strconv.Itoa(int(d.Hours()/24)) + "d ago"
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
