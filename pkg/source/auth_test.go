package source

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
)

const testSecret = "s3cr3t-T0KEN-value"

func TestHTTPBasicAuth(t *testing.T) {
	root := t.TempDir()
	w := newWorkRepo(t, root, "fleet")
	head := w.commit("c1", map[string]string{"fleet.yaml": "x"})
	srv := newGitHTTPServer(t, root, "alice", testSecret, false)
	u, _ := url.Parse(srv.URL + "/fleet")
	host := u.Host

	t.Run("options", func(t *testing.T) {
		opts := testOptions(t)
		opts.Username, opts.Password = "alice", testSecret
		rev, repo, err := Resolve(context.Background(), u.String(), "main", opts)
		if err != nil {
			t.Fatal(err)
		}
		defer repo.Close()
		if rev.Commit != head {
			t.Errorf("head = %s, want %s", rev.Commit, head)
		}
		opts.SSHKeyPassphrase = testSecret + "-passphrase"
		if s := fmt.Sprintf("%v %+v %#v %s", opts, opts, opts, opts); strings.Contains(s, testSecret) {
			t.Errorf("formatted Options show a secret: %s", s)
		}
	})
	t.Run("userinfo in URL", func(t *testing.T) {
		withCreds := *u
		withCreds.User = url.UserPassword("alice", testSecret)
		repo := mustOpen(t, withCreds.String(), testOptions(t))
		if strings.Contains(repo.Location(), testSecret) {
			t.Errorf("Location() = %s shows the password", repo.Location())
		}
	})
	bad := []struct {
		name string
		url  func() string
		opts func(*Options)
	}{
		{"wrong password", u.String, func(o *Options) { o.Username, o.Password = "alice", testSecret+"-wrong" }},
		{"token as username in URL", func() string {
			c := *u
			c.User = url.User(testSecret + "-wrong")
			return c.String()
		}, func(*Options) {}},
		{"password in URL", func() string {
			c := *u
			c.User = url.UserPassword("alice", testSecret+"-wrong")
			return c.String()
		}, func(*Options) {}},
		{"no credentials", u.String, func(*Options) {}},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			opts := testOptions(t)
			c.opts(&opts)
			before := srv.requests.Load()
			_, err := Open(context.Background(), c.url(), opts)
			if !errors.Is(err, ErrAuth) {
				t.Fatalf("error = %v, want ErrAuth", err)
			}
			t.Logf("error: %v", err)
			if msg := err.Error(); !strings.Contains(msg, host) || strings.Contains(msg, testSecret) {
				t.Errorf("error %q must name %s and not contain the secret", msg, host)
			}
			if n := srv.requests.Load() - before; n != 1 {
				t.Errorf("%d requests, want 1: auth errors are not retried", n)
			}
		})
	}
}

func TestHTTPSCABundle(t *testing.T) {
	root := t.TempDir()
	w := newWorkRepo(t, root, "fleet")
	head := w.commit("c1", map[string]string{"fleet.yaml": "x"})
	srv := newGitHTTPServer(t, root, "alice", testSecret, true)
	caFile := writeFile(t, t.TempDir(), "ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))

	opts := testOptions(t)
	opts.Username, opts.Password = "alice", testSecret
	_, err := Open(context.Background(), srv.URL+"/fleet", opts)
	if !errors.Is(err, ErrTLS) {
		t.Fatalf("without CA bundle: error = %v, want ErrTLS", err)
	}
	t.Logf("error: %v", err)
	opts.CAFile = caFile
	rev, repo, err := Resolve(context.Background(), srv.URL+"/fleet", "", opts)
	if err != nil {
		t.Fatalf("with CA bundle: %v", err)
	}
	repo.Close()
	if rev.Commit != head {
		t.Errorf("head = %s, want %s", rev.Commit, head)
	}
	insecure := testOptions(t)
	insecure.Username, insecure.Password, insecure.InsecureSkipTLSVerify = "alice", testSecret, true
	if _, err := Open(context.Background(), srv.URL+"/fleet", insecure); err != nil {
		t.Errorf("with InsecureSkipTLSVerify: %v", err)
	}
}

func TestSSH(t *testing.T) {
	root := t.TempDir()
	w := newWorkRepo(t, root, "fleet")
	head := w.commit("c1", map[string]string{"fleet.yaml": "x"})
	srv := newSSHServer(t, root)
	repoURL := "ssh://git@" + srv.addr + "/fleet"

	opts := testOptions(t)
	opts.SSHKeyFile, opts.KnownHostsFile = srv.clientKey, srv.knownHosts
	rev, repo, err := Resolve(context.Background(), repoURL, "main", opts)
	if err != nil {
		t.Fatal(err)
	}
	repo.Close()
	if rev.Commit != head || readString(t, rev, "fleet.yaml") != "x" {
		t.Errorf("head = %s, want %s", rev.Commit, head)
	}

	other := newSSHServer(t, t.TempDir()) // its host key is not the one of srv
	unknownHost := opts
	unknownHost.CacheDir = t.TempDir()
	unknownHost.KnownHostsFile = other.knownHosts
	_, err = Open(context.Background(), repoURL, unknownHost)
	if !errors.Is(err, ErrHostKey) {
		t.Errorf("unknown host key: error = %v, want ErrHostKey", err)
	}
	t.Logf("error: %v", err)
	wrongKey := opts
	wrongKey.CacheDir = t.TempDir()
	wrongKey.SSHKeyFile = other.clientKey
	if _, err := Open(context.Background(), repoURL, wrongKey); !errors.Is(err, ErrAuth) {
		t.Errorf("unauthorised client key: error = %v, want ErrAuth", err)
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://alice:" + testSecret + "@host/r.git": "https://host/r.git",
		"https://" + testSecret + "@host/r.git":       "https://host/r.git",
		"ssh://git:" + testSecret + "@host/r.git":     "ssh://git@host/r.git",
		"git@host:org/r.git":                          "git@host:org/r.git",
		"git:" + testSecret + "@host:org/r.git":       "git@host:org/r.git",
		"host:org/r.git":                              "host:org/r.git",
		"https://host/r.git":                          "https://host/r.git",
		"https://a:" + testSecret + "@ho st/%zz":      "https://ho st/%zz",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
	// The remote of an scp-style address with a password holds no password.
	r, err := parseRemote("git:" + testSecret + "@host:org/r.git")
	if err != nil || r.clean != "git@host:org/r.git" || r.user != "git" || r.password != "" {
		t.Errorf("parseRemote = %q as user %q (password kept: %t), %v; want git@host:org/r.git as user git", r.clean, r.user, r.password != "", err)
	}
}
