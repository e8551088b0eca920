#!/usr/bin/env bash
# Builds hack/gitops-check (kstatus from sigs.k8s.io/cli-utils, Argo CD's Lua runtime gopher-lua,
# and Flux's CEL health checks from github.com/fluxcd/pkg/runtime/cel, all from the Go module proxy)
# and caches the binary outside git, keyed by a hash of its go.mod, go.sum and sources. Prints the
# path of the binary.
#
#   "$(bash hack/build-gitops-check.sh)" kstatus < objects.json
#   "$(bash hack/build-gitops-check.sh)" argocd-health --script charts/agentcore-operator/argocd/health.lua < objects.json
#   "$(bash hack/build-gitops-check.sh)" flux-health --kustomization examples/gitops/flux-kustomization.yaml < objects.json
set -euo pipefail
HACK="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HACK/lib/go-build-cached.sh"
go_build_cached gitops-check "$HACK/gitops-check"
