package source

import (
	"io/fs"
	"net/url"
	"strings"
	"testing"
)

// FuzzRedactURL checks that a password or token in a URL never survives
// redaction, whatever the rest of the URL looks like.
func FuzzRedactURL(f *testing.F) {
	f.Add("https", "host:8443", "/org/repo.git", "alice", "p4ssw0rd")
	f.Add("http", "127.0.0.1", "/r", "", "tok3n")
	f.Add("ssh", "git.example", "/x", "git", "pw-pw")
	f.Fuzz(func(t *testing.T, scheme, host, path, user, secret string) {
		if len(secret) < 4 || strings.ContainsAny(secret, "/@:?#%") {
			return
		}
		// A secret that also stands in the rest of the URL cannot be told apart.
		rest := (&url.URL{Scheme: scheme, Host: host, Path: path}).String()
		if strings.Contains(rest, secret) || strings.Contains(url.User(user).String(), secret) {
			return
		}
		u := url.URL{Scheme: scheme, Host: host, Path: path, User: url.UserPassword(user, secret)}
		tokenAsUser := user == ""
		if tokenAsUser {
			u.User = url.User(secret)
		}
		raw := u.String()
		if !strings.Contains(raw, "://") {
			return
		}
		// A password is dropped from any URL; the whole userinfo of an
		// http(s) URL, where a user name alone may be a token, is dropped.
		isHTTP := scheme == "http" || scheme == "https"
		if out := RedactURL(raw); (isHTTP || !tokenAsUser) && strings.Contains(out, secret) {
			t.Fatalf("RedactURL(%q) = %q keeps the secret", raw, out)
		}
		if r, err := parseRemote(raw); err == nil && (isHTTP || !tokenAsUser) && strings.Contains(r.clean, secret) {
			t.Fatalf("parseRemote(%q).clean = %q keeps the secret", raw, r.clean)
		}
	})
}

// FuzzSymlinkTarget checks that a resolved symlink target never leaves the
// tree, whatever the link's directory and target.
func FuzzSymlinkTarget(f *testing.F) {
	f.Add("apps/web", "../mes/app.yaml")
	f.Add("a", "../../etc/passwd")
	f.Add("", "/abs")
	f.Fuzz(func(t *testing.T, dir, target string) {
		if dir != "" && !fs.ValidPath(dir) {
			return
		}
		got, ok := symlinkTarget(dir, target)
		if !ok {
			return
		}
		if !fs.ValidPath(got) {
			t.Fatalf("symlinkTarget(%q, %q) = %q, not a valid path inside the tree", dir, target, got)
		}
	})
}
