package apply_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/fleetsync/fleetsync/pkg/apply"
	"github.com/fleetsync/fleetsync/pkg/cluster"
)

func TestKindOf(t *testing.T) {
	gr := schema.GroupResource{Group: "apps", Resource: "deployments"}
	invalid := apierrors.NewInvalid(schema.GroupKind{Group: "apps", Kind: "Deployment"}, "web",
		field.ErrorList{field.Required(field.NewPath("spec", "ports").Index(0).Child("name"), "")})
	cases := []struct {
		name string
		err  error
		want apply.ErrorKind
	}{
		{"nil", nil, ""},
		{"cancelled", fmt.Errorf("north/a: wait: %w", context.Canceled), apply.ErrCanceled},
		{"deadline", fmt.Errorf("north/a: %w", context.DeadlineExceeded), apply.ErrTransient},
		{"throttled", apierrors.NewTooManyRequests("slow down", 1), apply.ErrTransient},
		{"conflict", apierrors.NewConflict(gr, "web", errors.New("changed")), apply.ErrTransient},
		{"server timeout", apierrors.NewServerTimeout(gr, "apply", 1), apply.ErrTransient},
		{"unavailable", apierrors.NewServiceUnavailable("down"), apply.ErrTransient},
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, apply.ErrTransient},
		{"invalid", invalid, apply.ErrPermanent},
		{"forbidden (admission)", apierrors.NewForbidden(gr, "web", errors.New("denied by policy")), apply.ErrPermanent},
		{"bad request", apierrors.NewBadRequest("admission webhook denied the request"), apply.ErrPermanent},
		{"immutable", &apply.ImmutableError{Fields: []string{"spec.selector"}, Err: invalid}, apply.ErrPermanent},
		{"mass prune", &apply.MassPruneError{Cluster: "north", App: "a", Prune: 3, Inventory: 4}, apply.ErrPermanent},
		{"no credentials", fmt.Errorf("cluster x: %w: nowhere", cluster.ErrNoCredentials), apply.ErrPermanent},
		{"unhealthy", &apply.HealthError{Cluster: "north", App: "a", Timeout: "5m"}, apply.ErrUnhealthy},
		{"object error wraps throttling", &apply.ObjectError{Cluster: "north", App: "a", Op: "apply", Err: apierrors.NewTooManyRequests("x", 1)}, apply.ErrTransient},
		{"joined: cancel wins", errors.Join(&apply.HealthError{}, context.Canceled), apply.ErrCanceled},
		{"joined: person beats transient", errors.Join(apierrors.NewTooManyRequests("x", 1), invalid), apply.ErrPermanent},
		{"joined: unhealthy beats transient", errors.Join(apierrors.NewTooManyRequests("x", 1), &apply.HealthError{}), apply.ErrUnhealthy},
		{"unknown", errors.New("something odd"), apply.ErrPermanent},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := apply.KindOf(tc.err); got != tc.want {
				t.Fatalf("KindOf(%v) = %q, want %q", tc.err, got, tc.want)
			}
		})
	}
}

func TestHealthErrorIsUnhealthy(t *testing.T) {
	err := fmt.Errorf("wrapped: %w", &apply.HealthError{Cluster: "n", App: "a", Failed: true})
	if !errors.Is(err, apply.ErrUnhealthy) || errors.Is(err, apply.ErrCanceled) {
		t.Fatal("a HealthError is ErrUnhealthy and nothing else")
	}
}

func TestBriefIsOneLineWithReasonAndField(t *testing.T) {
	dump := strings.Repeat("v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"web\"}} ", 40)
	st := &apierrors.StatusError{ErrStatus: metav1.Status{
		Status: metav1.StatusFailure, Code: 422, Reason: metav1.StatusReasonInvalid,
		Message: "Deployment.apps \"web\" is invalid: spec.selector: Invalid value: " + dump + ": field is immutable",
		Details: &metav1.StatusDetails{Causes: []metav1.StatusCause{{
			Type: metav1.CauseTypeFieldValueInvalid, Field: "spec.selector",
			Message: "Invalid value: " + dump + ": field is immutable",
		}}},
	}}
	err := &apply.ObjectError{Cluster: "north", App: "web", Object: apply.ObjectRef{Group: "apps", Version: "v1", Kind: "Deployment", Namespace: "web", Name: "web"}, Op: "apply", Err: st}
	got := apply.Brief(err)
	want := "north/web: Deployment/web/web: apply: Invalid: spec.selector: field is immutable"
	if got != want {
		t.Fatalf("Brief = %q\nwant  %q", got, want)
	}
	if len(err.Error()) < 2000 {
		t.Fatalf("the full error should keep the server's text (%d bytes)", len(err.Error()))
	}
	imm := &apply.ObjectError{Cluster: "north", App: "web", Object: err.Object, Op: "apply", Err: &apply.ImmutableError{Fields: []string{"spec.selector"}, Err: st}}
	if b := apply.Brief(imm); strings.Contains(b, "LabelSelector") || !strings.Contains(b, "immutable field spec.selector") || strings.Contains(b, "\n") {
		t.Fatalf("Brief of an immutable error: %q", b)
	}
}

// TestBriefIsBoundedWithManyFailures: an apply where 10,000 objects failed
// gives one status line of a bounded length (the status API and the
// dashboard show Brief), however long the joined error is.
func TestBriefIsBoundedWithManyFailures(t *testing.T) {
	var errs []error
	for i := range 10_000 {
		errs = append(errs, fmt.Errorf("north/big: ConfigMap/big/cm-%05d: apply: the server refused it", i))
	}
	b := apply.Brief(errors.Join(errs...))
	if len(b) > 400 || strings.Contains(b, "\n") {
		t.Fatalf("Brief of 10,000 failures: %d bytes, newline %v", len(b), strings.Contains(b, "\n"))
	}
}
