// gitops-check computes what GitOps tools would say about live BatchEvaluation objects, with the
// libraries those tools use, so the project's tests check real behaviour rather than a re-reading
// of the rules:
//
//	gitops-check kstatus < objects.json
//	    kstatus (sigs.k8s.io/cli-utils pkg/kstatus/status, used by Flux and Helm 4 --wait)
//	gitops-check argocd-health --script health.lua < objects.json
//	    an Argo CD resource.customizations.health Lua script, run with gopher-lua in the same
//	    sandbox Argo CD gives a user-configured script
//	gitops-check flux-health --kustomization flux-kustomization.yaml < objects.json
//	    the spec.healthCheckExprs of a Flux Kustomization, read from the file and evaluated by
//	    Flux's own status reader (github.com/fluxcd/pkg/runtime/cel), as kustomize-controller does
//
// Input: one object, a JSON array of objects, or a Kubernetes List (`kubectl get -o json`).
// Output: one JSON line per object, {"name": "<namespace>/<name>", "status": ..., "message": ...}.
// Exit status 0 when every object was evaluated, 1 on bad input or a script error.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

const usage = `usage:
  gitops-check kstatus < objects.json
  gitops-check argocd-health --script health.lua < objects.json
  gitops-check flux-health --kustomization kustomization.yaml < objects.json`

// Verdict is one output line.
type Verdict struct {
	Name    string `json:"name"`
	Status  string `json:"status"`
	Message string `json:"message"`
}

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "gitops-check: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string, in io.Reader, out io.Writer) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	var evaluate func(map[string]any) (Verdict, error)
	switch args[0] {
	case "kstatus":
		if len(args) != 1 {
			return errors.New(usage)
		}
		evaluate = computeKstatus
	case "argocd-health":
		if len(args) != 3 || args[1] != "--script" {
			return errors.New(usage)
		}
		script, err := os.ReadFile(args[2])
		if err != nil {
			return err
		}
		evaluate = func(obj map[string]any) (Verdict, error) {
			return argocdHealth(obj, string(script))
		}
	case "flux-health":
		if len(args) != 3 || args[1] != "--kustomization" {
			return errors.New(usage)
		}
		checks, err := readHealthCheckExprs(args[2])
		if err != nil {
			return err
		}
		evaluate, err = newFluxHealth(checks)
		if err != nil {
			return err
		}
	default:
		return errors.New(usage)
	}

	objects, err := readObjects(in)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(out)
	for _, obj := range objects {
		verdict, err := evaluate(obj)
		if err != nil {
			return fmt.Errorf("%s: %w", objectName(obj), err)
		}
		verdict.Name = objectName(obj)
		if err := enc.Encode(verdict); err != nil {
			return err
		}
	}
	return nil
}

// readObjects accepts what `kubectl get -o json` prints (an object or a List) and plain arrays.
// Numbers stay json.Number until normalize() turns them into the int64/float64 that
// apimachinery's unstructured decoding produces, which is what both kstatus and Argo CD see.
func readObjects(in io.Reader) ([]map[string]any, error) {
	dec := json.NewDecoder(in)
	dec.UseNumber()
	var raw any
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("reading JSON from stdin: %w", err)
	}
	raw = normalize(raw)
	var items []any
	switch v := raw.(type) {
	case []any:
		items = v
	case map[string]any:
		if list, ok := v["items"].([]any); ok && v["kind"] == "List" {
			items = list
		} else {
			items = []any{v}
		}
	default:
		return nil, errors.New("expected a JSON object, array or List")
	}
	objects := make([]map[string]any, 0, len(items))
	for i, item := range items {
		obj, ok := item.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("item %d is not an object", i)
		}
		objects = append(objects, obj)
	}
	return objects, nil
}

func normalize(v any) any {
	switch t := v.(type) {
	case json.Number:
		if i, err := t.Int64(); err == nil {
			return i
		}
		f, _ := t.Float64()
		return f
	case []any:
		for i := range t {
			t[i] = normalize(t[i])
		}
		return t
	case map[string]any:
		for k := range t {
			t[k] = normalize(t[k])
		}
		return t
	default:
		return v
	}
}

func objectName(obj map[string]any) string {
	meta, _ := obj["metadata"].(map[string]any)
	name, _ := meta["name"].(string)
	if ns, _ := meta["namespace"].(string); ns != "" {
		return ns + "/" + name
	}
	return name
}
