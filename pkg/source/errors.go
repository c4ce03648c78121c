package source

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
)

// ErrorKind classifies a source error so that callers can decide what to do
// (retry later, or wait for a human). Use errors.Is(err, source.ErrAuth).
type ErrorKind string

// Error implements error.
func (k ErrorKind) Error() string { return string(k) }

// The kinds of errors returned by this package.
const (
	// ErrAuth: the server refused the credentials, or none were given.
	ErrAuth ErrorKind = "authentication failed"
	// ErrHostKey: the SSH host key is unknown or does not match known_hosts.
	ErrHostKey ErrorKind = "ssh host key verification failed"
	// ErrTLS: the HTTPS server certificate is not trusted (see Options.CAFile).
	ErrTLS ErrorKind = "tls certificate verification failed"
	// ErrNotFound: the repository or the ref does not exist.
	ErrNotFound ErrorKind = "not found"
	// ErrTransient: network trouble or a server error; retrying later may work.
	ErrTransient ErrorKind = "transient network error"
	// ErrSignature: signature verification is on and the revision is
	// unsigned, signed by an untrusted key, or wrongly signed.
	ErrSignature ErrorKind = "signature verification failed"
	// ErrOther: anything else (invalid options, unexpected repository content).
	ErrOther ErrorKind = "git error"
)

// Error is a classified error about one repository. Its message never
// contains credentials: URL is credential-free and the wrapped message is
// scrubbed of any secret that the transport may have echoed.
type Error struct {
	Kind ErrorKind
	Op   string // what was done: "fetch", "open", "verify"
	URL  string // credential-free repository URL or directory
	Ref  string // the ref involved, if any
	msg  string // scrubbed text of Err
	Err  error
}

// Error says what failed, where, and why, without credentials.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Op)
	b.WriteString(" ")
	b.WriteString(e.URL)
	if e.Ref != "" && !strings.Contains(e.msg, e.Ref) {
		fmt.Fprintf(&b, " ref %q", e.Ref)
	}
	if e.Kind != ErrOther && !strings.Contains(e.msg, string(e.Kind)) {
		b.WriteString(": ")
		b.WriteString(string(e.Kind))
	}
	if e.msg != "" {
		b.WriteString(": ")
		b.WriteString(e.msg)
	}
	return b.String()
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is this error's kind.
func (e *Error) Is(target error) bool {
	k, ok := target.(ErrorKind)
	return ok && k == e.Kind
}

// RefNotFoundError says that a ref does not name anything in the repository.
// It matches ErrNotFound.
type RefNotFoundError struct {
	Ref string
}

// Error names the ref.
func (e *RefNotFoundError) Error() string { return fmt.Sprintf("ref %q not found", e.Ref) }

// Is makes errors.Is(err, ErrNotFound) true.
func (e *RefNotFoundError) Is(target error) bool { return target == ErrNotFound }

// SignatureError says why a revision failed signature verification. It
// matches ErrSignature.
type SignatureError struct {
	Object string // "commit <sha>" or "tag <name>"
	Reason string
}

// Error names the object and the reason.
func (e *SignatureError) Error() string {
	return fmt.Sprintf("%s: %s: %s", e.Object, ErrSignature, e.Reason)
}

// Is makes errors.Is(err, ErrSignature) true.
func (e *SignatureError) Is(target error) bool { return target == ErrSignature }

// newError classifies err and wraps it, scrubbing the given secrets.
func newError(op, url, ref string, err error, secrets ...string) error {
	if err == nil {
		return nil
	}
	var se *Error
	if errors.As(err, &se) {
		return err
	}
	msg := strings.TrimRight(scrub(err.Error(), secrets...), ": \n")
	return &Error{Kind: classify(err), Op: op, URL: url, Ref: ref, msg: msg, Err: err}
}

// scrub replaces every occurrence of a secret in s.
func scrub(s string, secrets ...string) string {
	for _, sec := range secrets {
		if len(sec) >= 3 {
			s = strings.ReplaceAll(s, sec, "***")
		}
	}
	return s
}

// classify maps transport errors to a kind.
func classify(err error) ErrorKind {
	var k ErrorKind
	switch {
	case errors.As(err, &k):
		return k
	case errors.Is(err, ErrSignature):
		return ErrSignature
	case errors.Is(err, ErrNotFound):
		return ErrNotFound
	case errors.Is(err, transport.ErrAuthenticationRequired),
		errors.Is(err, transport.ErrAuthorizationFailed),
		errors.Is(err, transport.ErrInvalidAuthMethod):
		return ErrAuth
	case errors.Is(err, transport.ErrRepositoryNotFound),
		errors.Is(err, transport.ErrEmptyRemoteRepository),
		errors.Is(err, plumbing.ErrReferenceNotFound):
		return ErrNotFound
	case errors.Is(err, context.Canceled):
		return ErrTransient
	}
	// go-git wraps some transport errors in types without Unwrap.
	var ue *plumbing.UnexpectedError
	if errors.As(err, &ue) && ue.Err != nil {
		if k := classify(ue.Err); k != ErrOther {
			return k
		}
	}
	var pe *plumbing.PermanentError
	if errors.As(err, &pe) && pe.Err != nil {
		if k := classify(pe.Err); k != ErrOther {
			return k
		}
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "knownhosts:"), strings.Contains(msg, "host key mismatch"),
		strings.Contains(msg, "key is unknown"):
		return ErrHostKey
	case strings.Contains(msg, "unable to authenticate"), strings.Contains(msg, "no supported methods remain"):
		return ErrAuth
	}
	var herr *githttp.Err
	if errors.As(err, &herr) {
		if c := herr.StatusCode(); c >= 500 || c == 429 || c == 408 {
			return ErrTransient
		}
		return ErrNotFound
	}
	var (
		uaErr   x509.UnknownAuthorityError
		hostErr x509.HostnameError
		invErr  x509.CertificateInvalidError
		tlsErr  *tls.CertificateVerificationError
	)
	if errors.As(err, &uaErr) || errors.As(err, &hostErr) || errors.As(err, &invErr) || errors.As(err, &tlsErr) ||
		strings.Contains(msg, "x509: ") {
		return ErrTLS
	}
	var nerr net.Error
	if errors.As(err, &nerr) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, syscall.EPIPE) {
		return ErrTransient
	}
	if strings.Contains(msg, "connection refused") || strings.Contains(msg, "connection reset") ||
		strings.Contains(msg, "i/o timeout") || strings.Contains(msg, "EOF") {
		return ErrTransient
	}
	return ErrOther
}

// retryable reports whether another attempt may succeed.
func retryable(err error) bool {
	return errors.Is(err, ErrTransient) && !errors.Is(err, context.Canceled)
}
