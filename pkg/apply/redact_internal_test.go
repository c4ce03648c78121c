package apply

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func TestRedactHidesSecretValuesEvenThroughUnwrap(t *testing.T) {
	const secret = "hunter2-very-secret"
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Secret",
		"metadata": map[string]any{"name": "s", "namespace": "ns"},
		"data":     map[string]any{"password": base64.StdEncoding.EncodeToString([]byte(secret))},
	}}
	apiErr := apierrors.NewInvalid(schema.GroupKind{Kind: "Secret"}, "s", field.ErrorList{
		field.Invalid(field.NewPath("data", "password"), secret, "quoted by the server"),
	})
	if !strings.Contains(apiErr.Error(), secret) {
		t.Fatalf("test setup: the API error should quote the value: %v", apiErr)
	}
	err := redact(apiErr, obj)
	if strings.Contains(err.Error(), secret) {
		t.Fatalf("redacted error shows the value: %v", err)
	}
	if !apierrors.IsInvalid(err) {
		t.Fatalf("redaction lost the API status: %v", err)
	}
	for e := errors.Unwrap(err); e != nil; e = errors.Unwrap(e) {
		if strings.Contains(e.Error(), secret) {
			t.Fatalf("an unwrapped error shows the value: %v", e)
		}
	}
	var st apierrors.APIStatus
	if errors.As(err, &st) && strings.Contains(st.Status().Message, secret) {
		t.Fatalf("errors.As(APIStatus) shows the value: %s", st.Status().Message)
	}
	// Not a Secret: nothing to hide, the error is returned as is.
	cm := obj.DeepCopy()
	cm.SetKind("ConfigMap")
	if got := redact(apiErr, cm); !errors.Is(got, apiErr) || got.Error() != apiErr.Error() {
		t.Fatalf("a ConfigMap's error was changed: %v", got)
	}
}
