package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fleetsync/fleetsync/internal/daemon"
	"github.com/fleetsync/fleetsync/internal/server"
	"github.com/fleetsync/fleetsync/pkg/reconcile"
	"github.com/fleetsync/fleetsync/pkg/rollout"
)

// statusFixture is two clusters, one down, three apps, a rolled-back rollout.
func statusFixture(now time.Time) daemon.Status {
	const rev, old = "4f1c2a9e7b1d3c5e8f90a1b2c3d4e5f60718293a", "91be03c4aa70d2e1f3b4c5d6e7f8091a2b3c4d5e"
	return daemon.Status{
		Mode: "central",
		Source: daemon.SourceStatus{
			URL: "https://git.example.com/fleet.git", Branch: "main", Revision: rev,
			Fetched: "c0ffee12ab34cd56ef7890ab12cd34ef567890ab", LastFetch: now.Add(-8 * time.Second),
			Error: "apps/mes/app.yaml:12: spec.source: unknown field\napps/web/app.yaml:3: metadata.name: invalid",
		},
		LastReconcile: now.Add(-5 * time.Second), ReconcileSeconds: 4.25, InFlight: []string{},
		Clusters: []daemon.ClusterStatus{
			{Name: "east", Up: false, Version: "v1.37.2", Nodes: 3, LastSeen: now.Add(-6 * time.Minute), Error: "dial tcp: connection refused",
				Apps: []daemon.AppStatus{{Name: "web", Revision: old, Sync: daemon.SyncOutOfSync, Health: daemon.HealthUnknown}}},
			{Name: "north", Up: true, Version: "v1.37.2", NodesReady: 3, Nodes: 3, LastSeen: now.Add(-12 * time.Second),
				Apps: []daemon.AppStatus{
					{Name: "mes", Revision: rev, Sync: daemon.SyncSynced, Health: daemon.HealthHealthy, Drifted: 2},
					{Name: "platform", Sync: daemon.SyncOutOfSync, Health: daemon.HealthUnknown},
					{Name: "web", Revision: old, Sync: daemon.SyncRolledBack, Health: daemon.HealthHealthy, Error: "not healthy after 5m0s"},
				}},
		},
		Rollouts: []reconcile.AppRollout{
			{App: "web", Target: rev, Phase: rollout.PhaseRolledBack, Wave: 0, Waves: 2, Reason: "revision 4f1c2a9e7b1d failed and is held:\nnorth: not healthy after 5m0s",
				Clusters: []rollout.ClusterStatus{{Cluster: "north", State: rollout.StateRolledBack}, {Cluster: "east", Wave: 1, State: rollout.StateHeld}}},
		},
	}
}

func TestPrintStatus(t *testing.T) {
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	st := statusFixture(now)
	var out bytes.Buffer
	printStatus(&out, &st, now)
	want := `Source: https://git.example.com/fleet.git (main) at 4f1c2a9, newest fetched c0ffee1 not in force, fetched 8s ago, reconciled 5s ago in 4.2s
Source error: apps/mes/app.yaml:12: spec.source: unknown field; apps/web/app.yaml:3: metadata.name: invalid

NAME   UP   VERSION  NODES  LAST-SEEN  ERROR
east   no   v1.37.2  0/3    6m ago     dial tcp: connection refused
north  yes  v1.37.2  3/3    12s ago    

APP       east                       north
mes                                  4f1c2a9 Synced/Healthy drift:2
platform                             - OutOfSync
web       91be03c OutOfSync/Unknown  91be03c RolledBack/Healthy

APP  PHASE       WAVE  TARGET   REASON
web  RolledBack  1/2   4f1c2a9  revision 4f1c2a9e7b1d failed and is held:; north: not healthy after 5m0s
`
	if diff := cmp.Diff(want, out.String()); diff != "" {
		t.Errorf("status table (-want +got):\n%s", diff)
	}
}

func TestStatusFromServer(t *testing.T) {
	st := statusFixture(time.Now())
	srv := httptest.NewServer(server.New(server.Options{Status: func() daemon.Status { return st }}))
	defer srv.Close()

	var out bytes.Buffer
	if err := runStatus(context.Background(), statusOptions{server: srv.URL + "/", output: "table", timeout: 5 * time.Second}, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Source: https://git.example.com/fleet.git (main) at 4f1c2a9", "north  yes  v1.37.2  3/3    12s ago", "4f1c2a9 Synced/Healthy drift:2", "web  RolledBack  1/2"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table output lacks %q:\n%s", want, out.String())
		}
	}

	out.Reset()
	if err := runStatus(context.Background(), statusOptions{server: srv.URL, output: "json"}, &out); err != nil {
		t.Fatal(err)
	}
	var got daemon.Status
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("-o json: %v\n%s", err, out.String())
	}
	if diff := cmp.Diff(st, got, cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })); diff != "" {
		t.Errorf("-o json (-want +got):\n%s", diff)
	}

	out.Reset()
	if err := runStatus(context.Background(), statusOptions{server: srv.URL, output: "yaml"}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "  name: north\n") || !strings.Contains(out.String(), "phase: RolledBack") {
		t.Errorf("-o yaml:\n%s", out.String())
	}
}

func TestStatusErrors(t *testing.T) {
	// A port that nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String()
	_ = l.Close()

	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"error":"starting"}`))
	}))
	defer failing.Close()
	notOurs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("<html>hello</html>")) }))
	defer notOurs.Close()

	tests := []struct {
		name   string
		o      statusOptions
		want   string
		forbid string
	}{
		{"unreachable", statusOptions{server: closed, output: "table"}, "cannot reach the fleetsync daemon at " + closed + "/api/v1/status: ", ""},
		{"password", statusOptions{server: "http://admin:s3cret@" + l.Addr().String(), output: "table"}, "http://admin:xxxxx@", "s3cret"},
		{"not a URL", statusOptions{server: "127.0.0.1:8080", output: "table"}, "--server 127.0.0.1:8080: want an http or https URL", ""},
		{"503", statusOptions{server: failing.URL, output: "table"}, "/api/v1/status: 503 Service Unavailable: starting", ""},
		{"not fleetsync", statusOptions{server: notOurs.URL, output: "json"}, "is this a fleetsync daemon?", ""},
		{"bad -o", statusOptions{server: failing.URL, output: "wide"}, "-o wide: want table, json or yaml", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := runStatus(context.Background(), tc.o, &out)
			var ee *exitError
			if !errors.As(err, &ee) || ee.code != 1 {
				t.Fatalf("got %v, want exit status 1", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if tc.forbid != "" && strings.Contains(err.Error(), tc.forbid) {
				t.Errorf("error %q shows %q", err, tc.forbid)
			}
			if out.Len() > 0 {
				t.Errorf("printed %q", out.String())
			}
		})
	}
}

func TestStatusCmdRegistered(t *testing.T) {
	cmd, _, err := newRootCmd().Find([]string{"status"})
	if err != nil || cmd.Name() != "status" {
		t.Fatalf("fleetsync status: %v", err)
	}
	if f := cmd.Flags().Lookup("server"); f == nil || f.DefValue != defaultServer {
		t.Errorf("--server: %+v", f)
	}
}
