package server

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/fleetsync/fleetsync/internal/daemon"
)

// envScreenshots names a directory for TestDashboardScreenshots to write its
// PNGs into; unset, the test is skipped.
const envScreenshots = "FLEETSYNC_SCREENSHOTS"

// fixtureServer serves the dashboard over a real listener with a Status that
// the test can replace.
type fixtureServer struct {
	*httptest.Server
	mu sync.Mutex
	st daemon.Status
}

func newFixtureServer(t *testing.T, st daemon.Status) *fixtureServer {
	t.Helper()
	f := &fixtureServer{st: st}
	f.Server = httptest.NewServer(New(Options{Status: f.status, Ready: func() bool { return true }}))
	t.Cleanup(f.Close)
	return f
}

func (f *fixtureServer) status() daemon.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st
}

func (f *fixtureServer) set(st daemon.Status) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.st = st
}

// browser is a headless Chromium tab that records the page's console errors,
// uncaught exceptions and failed loads.
type browser struct {
	ctx  context.Context
	mu   sync.Mutex
	errs []string
}

// newBrowser starts Chromium (skipping the test when it is not installed) and
// stops it when the test ends.
func newBrowser(t *testing.T) *browser {
	t.Helper()
	path := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		t.Skip("no Chromium on $PATH (chromium, chromium-browser, google-chrome): the browser tests need one (Debian: apt-get install -y chromium)")
	}
	userData := t.TempDir() // removed after the browser has stopped (cleanups run last first)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		append(chromedp.DefaultExecAllocatorOptions[:],
			chromedp.ExecPath(path),
			chromedp.NoSandbox, // the tests may run as root, in a container
			chromedp.DisableGPU,
			chromedp.UserDataDir(userData),
			chromedp.WindowSize(1400, 900),
			chromedp.Flag("hide-scrollbars", true),
		)...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	b := &browser{ctx: ctx}
	done := make(chan struct{})
	messages := chromedp.Console(ctx) // starts the browser
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				b.mu.Lock()
				b.errs = append(b.errs, fmt.Sprintf("%s (%s:%d)", m.Text, m.URL, m.Line))
				b.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		stop, cancelStop := context.WithTimeout(ctx, 10*time.Second)
		_ = chromedp.Cancel(stop)
		cancelStop()
		cancel()
		cancelAlloc()
		<-done
	})
	return b
}

// errors returns the console errors seen so far.
func (b *browser) errors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.errs)
}

// load opens url at the viewport's size and waits for the first render.
func (b *browser) load(t *testing.T, url string, width, height int64, opts ...chromedp.EmulateViewportOption) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx,
		chromedp.EmulateViewport(width, height, opts...),
		chromedp.Navigate(url),
		chromedp.WaitVisible(`body[data-state="ready"]`),
	); err != nil {
		t.Fatalf("load %s: %v (console errors: %q)", url, err, b.errors())
	}
}

// eval runs a JS expression in the page and decodes its result into T.
func eval[T any](t *testing.T, b *browser, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("eval %s: %v", expr, err)
	}
	return v
}

// cellInfo is what the page shows of one app on one cluster.
type cellInfo struct {
	Class      string `json:"class"`
	Text       string `json:"text"`
	Title      string `json:"title"`
	Background string `json:"background"`
	Color      string `json:"color"`
}

func TestDashboardInBrowser(t *testing.T) {
	b := newBrowser(t)
	fixtureAt := time.Now()
	srv := newFixtureServer(t, threeClusters(fixtureAt))
	b.load(t, srv.URL, 1400, 900)

	if got := eval[string](t, b, `document.title`); got != "fleetsync" {
		t.Errorf("title %q", got)
	}
	cards := eval[[]string](t, b, `[...document.querySelectorAll('#clusters .card')].map(c => c.innerText.replace(/\s+/g, ' ').toLowerCase())`)
	if len(cards) != 3 {
		t.Fatalf("%d cluster cards, want 3: %q", len(cards), cards)
	}
	for i, want := range []string{"east down version v1.37.2", "north up version v1.37.2", "south up version v1.36.4"} {
		if !strings.Contains(cards[i], want) {
			t.Errorf("card %d %q does not contain %q", i, cards[i], want)
		}
	}
	// north's heartbeat is 12 s older than the fixture, which was made
	// before the browser started (slow on a loaded machine): its age is
	// 12 s plus the time since then.
	age := regexp.MustCompile(`heartbeat (\d+)s ago`).FindStringSubmatch(cards[1])
	maxAge := 12 + int(time.Since(fixtureAt).Seconds()) + 1
	n := -1
	if len(age) == 2 {
		n, _ = strconv.Atoi(age[1])
	}
	if n < 11 || n > maxAge || !strings.Contains(cards[2], "4/5 ready") {
		t.Errorf("cards lack the heartbeat age (11-%ds) or the node count: %q", maxAge, cards)
	}
	if !strings.Contains(cards[0], "connection refused") {
		t.Errorf("the down cluster's card does not say why: %q", cards[0])
	}

	cols := eval[[]string](t, b, `[...document.querySelectorAll('table.matrix thead th')].map(th => th.textContent)`)
	if diff := slices.Compare(cols, []string{"App", "east (down)", "north", "south"}); diff != 0 {
		t.Errorf("matrix columns %q", cols)
	}
	rows := eval[[]string](t, b, `[...document.querySelectorAll('table.matrix tbody th .app-name')].map(th => th.textContent)`)
	if !slices.Equal(rows, []string{"mes", "metrics", "platform", "web"}) {
		t.Errorf("matrix rows %q", rows)
	}
	if n := eval[int](t, b, `document.querySelectorAll('table.matrix tbody td').length`); n != 12 {
		t.Errorf("%d matrix cells, want 12 (metrics does not target east)", n)
	}

	cell := func(app, cluster string) cellInfo {
		return eval[cellInfo](t, b, fmt.Sprintf(`(() => {
			const td = document.querySelector('td[data-app=%q][data-cluster=%q]');
			const s = getComputedStyle(td);
			return {class: td.className, text: td.innerText, title: td.title, background: s.backgroundColor, color: s.color};
		})()`, app, cluster))
	}
	web := cell("web", "north")
	if !strings.Contains(web.Class, "tone-bad") || !isRed(web.Background) || !isRed(web.Color) {
		t.Errorf("the rolled-back cell is not red: %+v", web)
	}
	if !strings.Contains(web.Text, "RolledBack") || !strings.Contains(web.Text, "91be03c") || !strings.Contains(web.Text, "not healthy 5m0s after the apply") {
		t.Errorf("the rolled-back cell does not show its state, revision and reason as text: %q", web.Text)
	}
	if !strings.Contains(web.Title, rollbackReason) {
		t.Errorf("the rolled-back cell's hover text lacks the reason: %q", web.Title)
	}
	if ok := cell("platform", "north"); isRed(ok.Background) || !strings.Contains(ok.Text, "Synced · Healthy") {
		t.Errorf("a healthy cell: %+v", ok)
	}
	if drift := cell("mes", "south"); !strings.Contains(drift.Text, "2") || !strings.Contains(drift.Title, "2 drifted") {
		t.Errorf("the drifted cell: %+v", drift)
	}
	if na := eval[string](t, b, `document.querySelector('table.matrix tbody tr[data-app="metrics"] td.na').textContent`); !strings.Contains(na, "not targeted") {
		t.Errorf("metrics on east: %q", na)
	}

	banner := eval[string](t, b, `(() => { const e = document.getElementById('source-error'); return e.hidden ? '' : e.innerText; })()`)
	if !strings.Contains(banner, "apps/mes/app.yaml:12") || !strings.Contains(banner, "4f1c2a9") {
		t.Errorf("the source error banner: %q", banner)
	}
	if bg := eval[string](t, b, `getComputedStyle(document.getElementById('source-error')).backgroundColor`); !isRed(bg) {
		t.Errorf("the source error banner is not red: %s", bg)
	}

	web2 := eval[string](t, b, `document.querySelector('details.rollout[data-app="web"]').innerText`)
	for _, want := range []string{"RolledBack", "Wave 1", "Wave 2", "north", "Held", rollbackReason} {
		if !strings.Contains(web2, want) {
			t.Errorf("web's rollout does not show %q: %q", want, web2)
		}
	}
	if open := eval[bool](t, b, `document.querySelector('details.rollout[data-app="platform"]').open`); open {
		t.Error("a done rollout is expanded")
	}
	if errs := b.errors(); len(errs) > 0 {
		t.Errorf("console errors: %q", errs)
	}
}

func TestDashboardLargeFleetInBrowser(t *testing.T) {
	b := newBrowser(t)
	st := largeFleet(time.Now())
	srv := newFixtureServer(t, st)
	b.load(t, srv.URL, 1400, 900)

	if n := eval[int](t, b, `document.querySelectorAll('#clusters .card').length`); n != 50 {
		t.Errorf("%d cluster cards, want 50", n)
	}
	if n := eval[int](t, b, `document.querySelectorAll('table.matrix thead th').length`); n != 51 {
		t.Errorf("%d matrix columns, want 51", n)
	}
	if n := eval[int](t, b, `document.querySelectorAll('table.matrix tbody tr').length`); n != 30 {
		t.Errorf("%d matrix rows, want 30", n)
	}
	// The matrix scrolls inside its box, the page does not scroll sideways.
	if w := eval[int](t, b, `document.documentElement.scrollWidth - document.documentElement.clientWidth`); w > 0 {
		t.Errorf("the page is %dpx wider than the window", w)
	}
	if sc := eval[bool](t, b, `(() => { const m = document.getElementById('matrix'); return m.scrollWidth > m.clientWidth; })()`); !sc {
		t.Error("the matrix does not scroll sideways")
	}

	// It refreshes by itself, and keeps the scroll positions.
	eval[chromedp.Void](t, b, `(() => { window.scrollTo(0, 700); const m = document.getElementById('matrix'); m.scrollLeft = 600; m.scrollTop = 120; })()`)
	st.Clusters[0].Version = "v1.37.9"
	srv.set(st)
	ctx, cancel := context.WithTimeout(b.ctx, 15*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.querySelector('#clusters .card').innerText.includes('v1.37.9')`,
		chromedp.WithPollingInterval(200*time.Millisecond))); err != nil {
		t.Fatalf("the page did not refresh: %v", err)
	}
	pos := eval[[]float64](t, b, `[window.scrollY, document.getElementById('matrix').scrollLeft, document.getElementById('matrix').scrollTop]`)
	// (the window's may move a little: the browser anchors the content in view
	// when a text above it changes height)
	if pos[0] < 680 || pos[0] > 720 || pos[1] != 600 || pos[2] != 120 {
		t.Errorf("scroll positions after a refresh: %v, want [700 600 120]", pos)
	}
	if errs := b.errors(); len(errs) > 0 {
		t.Errorf("console errors: %q", errs)
	}
}

// TestDashboardScreenshots writes PNGs of the dashboard into
// $FLEETSYNC_SCREENSHOTS, for people to look at.
func TestDashboardScreenshots(t *testing.T) {
	dir := os.Getenv(envScreenshots)
	if dir == "" {
		t.Skip("$" + envScreenshots + " is not set: no directory to write screenshots into")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t)
	small := newFixtureServer(t, threeClusters(time.Now()))
	large := newFixtureServer(t, largeFleet(time.Now()))
	shots := []struct {
		name          string
		url           string
		width, height int64
		phone         bool
	}{
		{"dashboard-3x4-1400x900", small.URL, 1400, 900, false},
		{"dashboard-3x4-390x844", small.URL, 390, 844, true},
		{"dashboard-50x30-1400x900", large.URL, 1400, 900, false},
		{"dashboard-3x4-1400x900-dark", small.URL, 1400, 900, false},
	}
	for _, s := range shots {
		var opts []chromedp.EmulateViewportOption
		if s.phone {
			opts = append(opts, chromedp.EmulateScale(2), chromedp.EmulateMobile)
		}
		scheme := "light"
		if strings.HasSuffix(s.name, "-dark") {
			scheme = "dark"
		}
		if _, err := chromedp.Run(b.ctx, func(ctx context.Context, tg *chromedp.Target) (cdp.Empty, error) {
			return cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
				Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}},
			})
		}); err != nil {
			t.Fatalf("%s: emulate %s: %v", s.name, scheme, err)
		}
		b.load(t, s.url, s.width, s.height, opts...)
		ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
		view, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, s.name+".png"), view, 0o644)
		}
		var full []byte
		if err == nil {
			full, err = chromedp.Run(ctx, chromedp.FullScreenshot(100))
		}
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, s.name+"-full.png"), full, 0o644)
		}
		if err == nil && !s.phone {
			// the matrix and the rollouts, below the cards
			var shot []byte
			err = chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`document.getElementById('h-apps').scrollIntoView({block: 'start'})`), chromedp.Sleep(200*time.Millisecond))
			if err == nil {
				shot, err = chromedp.Run(ctx, chromedp.CaptureScreenshot())
			}
			if err == nil {
				err = os.WriteFile(filepath.Join(dir, s.name+"-apps.png"), shot, 0o644)
			}
		}
		cancel()
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
	}
	if errs := b.errors(); len(errs) > 0 {
		t.Errorf("console errors: %q", errs)
	}
}

// isRed reports whether a CSS rgb()/rgba() colour is a red: its hue within
// 20 degrees of pure red, and clearly saturated (a light tint counts).
func isRed(css string) bool {
	var r, g, b float64
	s := strings.TrimPrefix(strings.TrimPrefix(css, "rgba("), "rgb(")
	if _, err := fmt.Sscanf(s, "%f, %f, %f", &r, &g, &b); err != nil {
		return false
	}
	hi, lo := max(r, g, b), min(r, g, b)
	if hi != r || hi-lo < 20 {
		return false
	}
	hue := 60 * (g - b) / (hi - lo) // -60..60 when red is the largest
	return hue > -20 && hue < 20
}
