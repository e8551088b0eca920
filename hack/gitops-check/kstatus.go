package main

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

// computeKstatus is kstatus' own Compute on the object, nothing added: the verdict Flux's
// health checks and `helm --wait` (Helm 4) reach.
func computeKstatus(obj map[string]any) (Verdict, error) {
	result, err := status.Compute(&unstructured.Unstructured{Object: obj})
	if err != nil {
		return Verdict{}, err
	}
	return Verdict{Status: result.Status.String(), Message: result.Message}, nil
}
