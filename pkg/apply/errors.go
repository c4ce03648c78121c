package apply

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"syscall"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"

	"github.com/fleetsync/fleetsync/pkg/cluster"
)

// ErrorKind says what a scheduler should do about an error: retry later, wait
// for a person, or nothing (the work was cancelled). Test with
// errors.Is(err, apply.ErrTransient) or KindOf(err).
type ErrorKind string

// Error implements error, so that a kind can be an errors.Is target.
func (k ErrorKind) Error() string { return string(k) }

// The kinds of cluster and apply errors.
const (
	// ErrTransient: the cluster is unreachable, throttles, times out, answers
	// with a server error or a conflict; the same work may succeed later.
	ErrTransient ErrorKind = "transient"
	// ErrPermanent: the object is invalid, changes an immutable field, is denied
	// by admission or authorization, or a prune was refused as too large;
	// retrying changes nothing until a person changes the repo or the cluster.
	ErrPermanent ErrorKind = "needs a person"
	// ErrUnhealthy: applied, but not healthy (kstatus Failed, or not Current
	// before the deadline).
	ErrUnhealthy ErrorKind = "unhealthy"
	// ErrCanceled: the context ended (a shutdown or an interrupt). Never a health
	// failure: nothing may be rolled back because of it.
	ErrCanceled ErrorKind = "canceled"
)

// KindOf classifies an error; a joined error takes the most decisive kind of its
// parts: canceled, then needs a person, then unhealthy, then transient. An error
// nothing is known about is ErrPermanent (a person has to look). nil gives "".
func KindOf(err error) ErrorKind {
	if err == nil {
		return ""
	}
	kinds := map[ErrorKind]bool{}
	collectKinds(err, kinds)
	for _, k := range []ErrorKind{ErrCanceled, ErrPermanent, ErrUnhealthy, ErrTransient} {
		if kinds[k] {
			return k
		}
	}
	return ErrPermanent
}

// collectKinds walks err's tree; each leaf (or typed node) adds its kind.
func collectKinds(err error, into map[ErrorKind]bool) {
	if k, ok := directKind(err); ok {
		into[k] = true
		return
	}
	switch u := err.(type) { //nolint:errorlint // walking the tree by hand
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			collectKinds(e, into)
		}
		return
	case interface{ Unwrap() error }:
		if e := u.Unwrap(); e != nil {
			collectKinds(e, into)
			return
		}
	}
	into[ErrPermanent] = true
}

// directKind is the kind of one error node, when the node itself says it.
func directKind(err error) (ErrorKind, bool) {
	if k, ok := err.(interface{ ErrorKind() ErrorKind }); ok { //nolint:errorlint // one node at a time
		if kind := k.ErrorKind(); kind != "" {
			return kind, true
		}
	}
	switch e := err.(type) { //nolint:errorlint // one node at a time
	case ErrorKind:
		return e, true
	case *HealthError:
		return ErrUnhealthy, true
	case *ImmutableError, *MassPruneError:
		return ErrPermanent, true
	}
	if errors.Is(err, context.Canceled) && !isDeadline(err) {
		return ErrCanceled, true
	}
	if errors.Is(err, cluster.ErrNoCredentials) {
		return ErrPermanent, true
	}
	var st apierrors.APIStatus
	if errors.As(err, &st) {
		if _, isStatus := err.(apierrors.APIStatus); isStatus { //nolint:errorlint // this node only
			return statusKind(err), true
		}
	}
	if meta.IsNoMatchError(err) {
		return ErrPermanent, true // a kind the cluster does not serve (a missing CRD)
	}
	if isDeadline(err) || isNetwork(err) {
		return ErrTransient, true
	}
	return "", false
}

func isDeadline(err error) bool { return errors.Is(err, context.DeadlineExceeded) }

func statusKind(err error) ErrorKind {
	switch {
	case apierrors.IsTooManyRequests(err), apierrors.IsServerTimeout(err), apierrors.IsTimeout(err),
		apierrors.IsConflict(err), apierrors.IsServiceUnavailable(err), apierrors.IsInternalError(err),
		apierrors.IsUnexpectedServerError(err):
		return ErrTransient
	case apierrors.IsInvalid(err), apierrors.IsBadRequest(err), apierrors.IsForbidden(err),
		apierrors.IsUnauthorized(err), apierrors.IsNotAcceptable(err), apierrors.IsMethodNotSupported(err),
		apierrors.IsRequestEntityTooLargeError(err), apierrors.IsUnsupportedMediaType(err), apierrors.IsAlreadyExists(err):
		return ErrPermanent
	case apierrors.IsNotFound(err):
		return ErrTransient // gone meanwhile (a namespace being created, an object deleted)
	}
	var st apierrors.APIStatus
	if errors.As(err, &st) && st.Status().Code >= 500 {
		return ErrTransient
	}
	return ErrPermanent
}

func isNetwork(err error) bool {
	var ne net.Error
	var ue *url.Error
	var oe *net.OpError
	return errors.As(err, &ne) || errors.As(err, &ue) || errors.As(err, &oe) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		strings.Contains(err.Error(), "connection refused") || strings.Contains(err.Error(), "no such host")
}

// HealthError says an app's objects did not become healthy: Failed, or not
// Current before the deadline. It is ErrUnhealthy.
type HealthError struct {
	Cluster, App string
	// Failed is true when an object reported kstatus Failed (the wait ended early).
	Failed bool
	// Timeout is the deadline that passed (when not Failed).
	Timeout string
	// Objects are the objects that are not Current, with kstatus's message.
	Objects []ObjectStatus
	// Err is set when the last health read itself failed.
	Err error
}

func (e *HealthError) Error() string {
	what := "not healthy after " + e.Timeout
	if e.Failed {
		what = "failed"
	}
	var parts []string
	for _, s := range e.Objects {
		if s.Status != "Current" {
			parts = append(parts, fmt.Sprintf("%s: %s: %s", s.Object, s.Status, s.Message))
		}
	}
	if e.Err != nil {
		parts = append(parts, e.Err.Error())
	}
	return fmt.Sprintf("%s/%s: %s: %s", e.Cluster, e.App, what, strings.Join(parts, "; "))
}

// Is makes errors.Is(err, ErrUnhealthy) true.
func (e *HealthError) Is(target error) bool { return target == ErrUnhealthy }

// Brief is a one-line form of an error for tables: for an API server refusal,
// its reason and the fields it names (without the dumped values); otherwise the
// first line, cut at 300 characters. The full text stays in err.Error().
func Brief(err error) string {
	if err == nil {
		return ""
	}
	prefix := ""
	var oe *ObjectError
	if errors.As(err, &oe) {
		prefix = fmt.Sprintf("%s/%s: %s: %s: ", oe.Cluster, oe.App, oe.Object, oe.Op)
		var ie *ImmutableError
		if errors.As(oe.Err, &ie) {
			return prefix + fmt.Sprintf("immutable field %s cannot change (annotate the object %s: %s to recreate it)",
				strings.Join(ie.Fields, ", "), annotationRecreate, RecreateEnabled)
		}
	}
	var st apierrors.APIStatus
	if errors.As(err, &st) {
		s := st.Status()
		if s.Details != nil && len(s.Details.Causes) > 0 {
			var causes []string
			for _, c := range s.Details.Causes {
				causes = append(causes, strings.TrimSpace(c.Field+": "+shortCause(c.Message)))
			}
			return cut(prefix + string(s.Reason) + ": " + strings.Join(causes, "; "))
		}
		if prefix != "" {
			return cut(prefix + string(s.Reason) + ": " + firstLine(s.Message))
		}
	}
	return cut(firstLine(err.Error()))
}

// shortCause drops the "Invalid value: <dump>: " part of a field cause.
func shortCause(msg string) string {
	if rest, ok := strings.CutPrefix(msg, "Invalid value: "); ok {
		if i := strings.LastIndex(rest, ": "); i >= 0 {
			return rest[i+2:]
		}
	}
	return firstLine(msg)
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " ..."
	}
	return s
}

func cut(s string) string {
	const limit = 300
	if len(s) <= limit {
		return s
	}
	return s[:limit] + " ..."
}
