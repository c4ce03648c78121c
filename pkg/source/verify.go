package source

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

const (
	pgpSignatureHeader = "-----BEGIN PGP SIGNATURE-----"
	pgpPublicKeyHeader = "-----BEGIN PGP PUBLIC KEY BLOCK-----"
)

// loadKeyring reads trusted public keys from armored (or binary) files; a
// file may hold several armored blocks.
func loadKeyring(files []string) (openpgp.EntityList, error) {
	var ring openpgp.EntityList
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("keyring: %w", err)
		}
		var keys openpgp.EntityList
		if !bytes.Contains(data, []byte(pgpPublicKeyHeader)) {
			keys, err = openpgp.ReadKeyRing(bytes.NewReader(data))
		} else {
			for _, block := range strings.SplitAfter(string(data), "-----END PGP PUBLIC KEY BLOCK-----") {
				if !strings.Contains(block, pgpPublicKeyHeader) {
					continue
				}
				var ks openpgp.EntityList
				ks, err = openpgp.ReadArmoredKeyRing(strings.NewReader(block))
				if err != nil {
					break
				}
				keys = append(keys, ks...)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("keyring %s: %w", name, err)
		}
		if len(keys) == 0 {
			return nil, fmt.Errorf("keyring %s: no public keys", name)
		}
		ring = append(ring, keys...)
	}
	return ring, nil
}

// checkSignature verifies an armored detached signature over payload.
func checkSignature(ring openpgp.EntityList, what, signature string, payload plumbing.EncodedObject) (string, error) {
	if signature == "" {
		return "", &SignatureError{Object: what, Reason: "not signed"}
	}
	if !strings.Contains(signature, pgpSignatureHeader) {
		return "", &SignatureError{Object: what, Reason: "signature is not OpenPGP (only OpenPGP signatures are supported)"}
	}
	if strings.Count(signature, pgpSignatureHeader) > 1 {
		return "", &SignatureError{Object: what, Reason: "more than one signature"}
	}
	r, err := payload.Reader()
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	defer r.Close()
	signer, err := openpgp.CheckArmoredDetachedSignature(ring, r, strings.NewReader(signature), nil)
	if err != nil {
		reason := "bad signature: " + err.Error()
		if errors.Is(err, pgperrors.ErrUnknownIssuer) {
			reason = "signed by a key that is not in the trusted keyring"
		}
		return "", &SignatureError{Object: what, Reason: reason}
	}
	return describeSigner(signer), nil
}

func describeSigner(e *openpgp.Entity) string {
	if e == nil || e.PrimaryKey == nil {
		return ""
	}
	s := strings.ToUpper(fmt.Sprintf("%x", e.PrimaryKey.Fingerprint))
	// The primary identity, not any key of the Identities map: the same key
	// must describe the same way every time.
	if id := e.PrimaryIdentity(); id != nil {
		return s + " " + id.Name
	}
	return s
}

// verifyCommit checks the commit's own signature.
func verifyCommit(ring openpgp.EntityList, c *object.Commit) (string, error) {
	payload := &plumbing.MemoryObject{}
	if err := c.EncodeWithoutSignature(payload); err != nil {
		return "", fmt.Errorf("commit %s: %w", c.Hash, err)
	}
	return checkSignature(ring, "commit "+c.Hash.String(), c.PGPSignature, payload)
}

// verifyTag checks an annotated tag's signature.
func verifyTag(ring openpgp.EntityList, t *object.Tag) (string, error) {
	payload := &plumbing.MemoryObject{}
	if err := t.EncodeWithoutSignature(payload); err != nil {
		return "", fmt.Errorf("tag %s: %w", t.Name, err)
	}
	return checkSignature(ring, "tag "+t.Name, t.PGPSignature, payload)
}

// verifyTagsPointingAt accepts commit when some signed annotated tag that
// peels to it verifies (tag mode with a branch or SHA ref).
func verifyTagsPointingAt(ring openpgp.EntityList, s storer.Storer, commit plumbing.Hash) (string, error) {
	refs, err := s.IterReferences()
	if err != nil {
		return "", fmt.Errorf("list tags: %w", err)
	}
	defer refs.Close()
	var firstErr error
	signer := ""
	err = refs.ForEach(func(ref *plumbing.Reference) error {
		if !ref.Name().IsTag() || ref.Type() != plumbing.HashReference {
			return nil
		}
		t, err := object.GetTag(s, ref.Hash())
		if err != nil {
			return nil // lightweight tag
		}
		target, err := peelTag(s, t)
		if err != nil || target != commit {
			return nil
		}
		who, err := verifyTag(ring, t)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			return nil
		}
		signer = who
		return storer.ErrStop
	})
	if err != nil {
		return "", fmt.Errorf("list tags: %w", err)
	}
	if signer != "" {
		return signer, nil
	}
	if firstErr != nil {
		return "", firstErr
	}
	return "", &SignatureError{Object: "commit " + commit.String(), Reason: "no annotated tag points at this commit (tag mode needs a signed annotated tag)"}
}

// peelTag follows a chain of tag objects to a commit.
func peelTag(s storer.EncodedObjectStorer, t *object.Tag) (plumbing.Hash, error) {
	for range 10 {
		switch t.TargetType {
		case plumbing.CommitObject:
			return t.Target, nil
		case plumbing.TagObject:
			next, err := object.GetTag(s, t.Target)
			if err != nil {
				return plumbing.ZeroHash, err
			}
			t = next
		default:
			return plumbing.ZeroHash, fmt.Errorf("tag %s points at a %s, not a commit", t.Name, t.TargetType)
		}
	}
	return plumbing.ZeroHash, fmt.Errorf("tag %s: too many nested tags", t.Name)
}
