package gittest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Name, Email and Date are the author and committer of every commit made
// through Run, so a history built the same way has the same SHAs.
const (
	Name  = "Test"
	Email = "test@example.com"
	Date  = "2026-01-02T03:04:05Z"
)

// SkipWithoutGit skips the test when the git CLI is not installed.
func SkipWithoutGit(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git CLI not installed")
	}
}

// Env is the environment for a git process: the test process's own, with
// home as HOME, no system or global git config, commit signing off, and
// the fixed author and committer.
func Env(home string) []string {
	return append(os.Environ(),
		"HOME="+home, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL="+os.DevNull,
		"GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=commit.gpgsign", "GIT_CONFIG_VALUE_0=false",
		"GIT_AUTHOR_NAME="+Name, "GIT_AUTHOR_EMAIL="+Email, "GIT_AUTHOR_DATE="+Date,
		"GIT_COMMITTER_NAME="+Name, "GIT_COMMITTER_EMAIL="+Email, "GIT_COMMITTER_DATE="+Date,
	)
}

// Run runs git with args in dir, with Env(dir), and returns its standard
// output with surrounding space trimmed. A failure fails the test with
// git's standard error.
func Run(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), "git", args...)
	cmd.Dir = dir
	cmd.Env = Env(dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return strings.TrimSpace(string(out))
}

// Init makes dir (and its parents) if needed and initialises a repository
// in it on branch main.
func Init(t testing.TB, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	Run(t, dir, "init", "-q", "-b", "main")
}

// CommitAll stages every change of dir's work tree, commits it with msg
// (also when nothing changed) and returns the new commit's SHA.
func CommitAll(t testing.TB, dir, msg string) string {
	t.Helper()
	Run(t, dir, "add", "-A")
	Run(t, dir, "commit", "-q", "--allow-empty", "-m", msg)
	return Run(t, dir, "rev-parse", "HEAD")
}

// Replace replaces the first old with new in the file rel of dir, failing
// the test when the file does not contain old. rel may not leave dir.
func Replace(t testing.TB, dir, rel, old, new string) {
	t.Helper()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	b, err := root.ReadFile(filepath.FromSlash(rel))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(old)) {
		t.Fatalf("%s does not contain %q", rel, old)
	}
	if err := root.WriteFile(filepath.FromSlash(rel), bytes.Replace(b, []byte(old), []byte(new), 1), 0o600); err != nil {
		t.Fatal(err)
	}
}

// ExampleFleet creates a repository in a new temporary directory holding
// the module's examples/fleet-repo in two commits on main: the example as
// it is, then one scaling the mes app's Deployment from 5 to 7 replicas.
// It returns the directory and the two SHAs, and skips the test when git is
// not installed. The module is found from the
// working directory (the package's directory under go test).
func ExampleFleet(t testing.TB) (dir, example, scaled string) {
	t.Helper()
	SkipWithoutGit(t)
	dir = t.TempDir()
	Init(t, dir)
	if err := os.CopyFS(dir, os.DirFS(filepath.Join(moduleRoot(t), "examples", "fleet-repo"))); err != nil {
		t.Fatalf("copy example fleet: %v", err)
	}
	example = CommitAll(t, dir, "example fleet")
	Replace(t, dir, "apps/mes/base/deployment.yaml", "replicas: 5", "replicas: 7")
	scaled = CommitAll(t, dir, "scale mes")
	return dir, example, scaled
}

// moduleRoot is the nearest directory at or above the working directory
// holding a go.mod.
func moduleRoot(t testing.TB) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		if filepath.Dir(dir) == dir {
			t.Fatalf("no go.mod in %s or above", wd)
		}
	}
}
