package source

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// pgpKey generates a signing key and writes its armored public key to dir.
func pgpKey(t *testing.T, dir, name string) (*openpgp.Entity, string) {
	t.Helper()
	e, err := openpgp.NewEntity(name, "", name+"@example.com", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, openpgp.PublicKeyType, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Serialize(w); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return e, writeFile(t, dir, name+".asc", buf.Bytes())
}

// signedRepo commits with go-git, optionally signing.
type signedRepo struct {
	t  *testing.T
	g  *git.Repository
	wt *git.Worktree
}

func newSignedRepo(t *testing.T, dir string) *signedRepo {
	g, err := git.PlainInit(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	wt, err := g.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	return &signedRepo{t: t, g: g, wt: wt}
}

func (s *signedRepo) commit(content string, key *openpgp.Entity) string {
	s.t.Helper()
	p := filepath.Join(s.wt.Filesystem.Root(), "fleet.yaml")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		s.t.Fatal(err)
	}
	if _, err := s.wt.Add("fleet.yaml"); err != nil {
		s.t.Fatal(err)
	}
	h, err := s.wt.Commit(content, &git.CommitOptions{Author: sig(), SignKey: key})
	if err != nil {
		s.t.Fatal(err)
	}
	return h.String()
}

func (s *signedRepo) tag(name, commit string, key *openpgp.Entity) {
	s.t.Helper()
	_, err := s.g.CreateTag(name, plumbing.NewHash(commit), &git.CreateTagOptions{Tagger: sig(), Message: name, SignKey: key})
	if err != nil {
		s.t.Fatal(err)
	}
}

func sig() *object.Signature {
	return &object.Signature{Name: "Test", Email: "test@example.com", When: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func TestSignatureVerification(t *testing.T) {
	ctx := context.Background()
	keys := t.TempDir()
	trusted, trustedFile := pgpKey(t, keys, "trusted")
	stranger, _ := pgpKey(t, keys, "stranger")
	_, otherFile := pgpKey(t, keys, "other")

	dir := t.TempDir()
	s := newSignedRepo(t, dir)
	signed := s.commit("signed\n", trusted)
	s.tag("v1", signed, trusted)
	s.tag("v1-stranger", signed, stranger)
	s.tag("v1-unsigned", signed, nil)
	strangers := s.commit("stranger\n", stranger)
	unsigned := s.commit("unsigned\n", nil)

	head := testOptions(t)
	head.Verify, head.KeyringFiles = VerifyHead, []string{otherFile, trustedFile}
	repo := mustOpen(t, "file://"+dir, head)

	rev, err := repo.Open(ctx, signed)
	if err != nil {
		t.Fatalf("signed commit refused: %v", err)
	}
	if !strings.Contains(rev.SignedBy, "trusted@example.com") {
		t.Errorf("SignedBy = %q", rev.SignedBy)
	}
	for ref, reason := range map[string]string{unsigned: "not signed", strangers: "not in the trusted keyring", "": "not signed"} {
		_, err := repo.Open(ctx, ref)
		var se *SignatureError
		if !errors.Is(err, ErrSignature) || !errors.As(err, &se) || !strings.Contains(err.Error(), reason) {
			t.Errorf("head mode, ref %q: error = %v, want a signature error saying %q", ref, err, reason)
		}
		t.Logf("error: %v", err)
	}
	// Fetch under head mode refuses the unsigned head; the revision already
	// in hand stays readable.
	if _, err := repo.Fetch(ctx); !errors.Is(err, ErrSignature) {
		t.Errorf("Fetch of unsigned head: error = %v, want ErrSignature", err)
	}
	if readString(t, rev, "fleet.yaml") != "signed\n" {
		t.Error("last good revision unreadable")
	}

	tagOpts := testOptions(t)
	tagOpts.Verify, tagOpts.KeyringFiles = VerifyTag, []string{trustedFile}
	tagged := mustOpen(t, "file://"+dir, tagOpts)
	if rev, err := tagged.Open(ctx, "v1"); err != nil || rev.Commit != signed {
		t.Errorf("tag mode, signed tag: %v", err)
	}
	if _, err := tagged.Open(ctx, signed); err != nil {
		t.Errorf("tag mode, commit with a signed tag: %v", err)
	}
	for _, ref := range []string{"v1-stranger", "v1-unsigned", "master", unsigned} {
		if _, err := tagged.Open(ctx, ref); !errors.Is(err, ErrSignature) {
			t.Errorf("tag mode, ref %q: error = %v, want ErrSignature", ref, err)
		}
	}

	// A local repository without a ref is verified at HEAD (unsigned here);
	// a plain directory cannot be verified at all.
	if _, _, err := Resolve(ctx, dir, "", head); !errors.Is(err, ErrSignature) {
		t.Errorf("local repository under head mode: error = %v, want ErrSignature", err)
	}
	if _, _, err := Resolve(ctx, t.TempDir(), "", head); !errors.Is(err, ErrSignature) {
		t.Errorf("plain directory under head mode: error = %v, want ErrSignature", err)
	}
	if _, err := Open(ctx, "file://"+dir, Options{CacheDir: t.TempDir(), Verify: VerifyHead}); err == nil {
		t.Error("head mode without keyring accepted")
	}
	if _, err := ParseVerifyMode("always"); err == nil {
		t.Error("ParseVerifyMode accepted an unknown mode")
	}
}
