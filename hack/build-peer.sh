#!/usr/bin/env bash
# Builds bench/peer (the benchmark's controller-runtime peer: sigs.k8s.io/controller-runtime and
# aws-sdk-go-v2/service/bedrockagentcore, both from the Go module proxy) and caches the binary
# outside git, keyed by a hash of its go.mod, go.sum and sources. Prints the path of the binary.
# The first build takes a few minutes on 2 cores.
#
#   target/release/agentcore-bench --quick --peer "$(bash hack/build-peer.sh)"
set -euo pipefail
HACK="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HACK/lib/go-build-cached.sh"
# Stripped, as a release build of an operator would be.
go_build_cached bench-peer "$HACK/../bench/peer" -ldflags "-s -w"
