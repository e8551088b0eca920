package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/fluxcd/pkg/apis/kustomize"
	"github.com/fluxcd/pkg/runtime/cel"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// fluxKustomization is the part of a Flux Kustomization (kustomize.toolkit.fluxcd.io/v1) that
// holds its custom health checks, with Flux's own API type for them.
type fluxKustomization struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		HealthCheckExprs []kustomize.CustomHealthCheck `json:"healthCheckExprs"`
	} `json:"spec"`
}

// readHealthCheckExprs reads spec.healthCheckExprs from the Flux Kustomizations in a YAML file
// (one or more documents); it is an error if none has any.
func readHealthCheckExprs(path string) ([]kustomize.CustomHealthCheck, error) {
	text, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var checks []kustomize.CustomHealthCheck
	for _, doc := range bytes.Split(text, []byte("\n---")) {
		var k fluxKustomization
		if err := yaml.Unmarshal(doc, &k); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if k.Kind == "Kustomization" && k.APIVersion == "kustomize.toolkit.fluxcd.io/v1" {
			checks = append(checks, k.Spec.HealthCheckExprs...)
		}
	}
	if len(checks) == 0 {
		return nil, fmt.Errorf("%s: no Flux Kustomization with spec.healthCheckExprs", path)
	}
	return checks, nil
}

// newFluxHealth returns the health check kustomize-controller runs for objects of the kinds in
// checks: the status reader that Flux's github.com/fluxcd/pkg/runtime/cel builds from a
// Kustomization's spec.healthCheckExprs (cel.NewStatusReader, what kustomize-controller calls),
// asked for one object the way its status poller asks (ReadStatusForObject). The evaluation is
// Flux's: its CEL environment, its order (generation not observed → InProgress, then the
// inProgress, failed and current expressions, else InProgress), and an expression that fails to
// evaluate reads as Unknown with the error in the message. An object of a kind without an
// expression is an error here (Flux would use kstatus for it).
func newFluxHealth(checks []kustomize.CustomHealthCheck) (func(map[string]any) (Verdict, error), error) {
	ctor, err := cel.NewStatusReader(checks)
	if err != nil {
		return nil, err
	}
	// The mapper only serves reads by reference from the cluster; an object in hand needs none.
	reader := ctor(nil)
	return func(obj map[string]any) (Verdict, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		result, err := reader.ReadStatusForObject(ctx, nil, &unstructured.Unstructured{Object: obj})
		if err != nil {
			return Verdict{}, err
		}
		if result == nil {
			return Verdict{}, errors.New("no status from the Flux status reader")
		}
		message := result.Message
		if result.Error != nil {
			message = result.Error.Error()
		}
		return Verdict{Status: result.Status.String(), Message: message}, nil
	}, nil
}
