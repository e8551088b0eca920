#!/usr/bin/env bash
# Builds promtool from its Go module (Go module proxy only) and caches the binary outside git,
# keyed by version. Prints the directory that holds it.
#
# Prometheus publishes its Go module as github.com/prometheus/prometheus v0.3XX.Y for release
# v3.XX.Y. Its go.mod has no replace directives, so a plain `go install` works (as for helm, see
# build-helm.sh). The release version is stamped with -ldflags so that `promtool --version`
# reports it. hack/test-chart.sh uses it to check and unit-test the chart's alert rules: they are
# never skipped, so this build must succeed.
set -euo pipefail

PROMETHEUS_VERSION="${PROMETHEUS_VERSION:-v0.316.0}"
CACHE_ROOT="${AGENTCORE_TOOLS_DIR:-$HOME/.cache/agentcore-operator/tools}"
OUT="$CACHE_ROOT/promtool-$PROMETHEUS_VERSION"

if [ -x "$OUT/promtool" ]; then
  echo "$OUT"
  exit 0
fi

log() { echo "build-promtool: $*" >&2; }
mkdir -p "$OUT"
# Concurrent callers wait for one build instead of racing it.
exec 9>"$CACHE_ROOT/.promtool-$PROMETHEUS_VERSION.lock"
flock 9
if [ -x "$OUT/promtool" ]; then
  echo "$OUT"
  exit 0
fi
# v0.316.0 -> 3.16.0: the release the module version stands for.
minor_patch="${PROMETHEUS_VERSION#v0.3}"
release="3.$((10#${minor_patch%%.*})).${minor_patch#*.}"
log "building promtool $release ($PROMETHEUS_VERSION) into $OUT (first build: a few minutes on 2 cores)"
# Build into a scratch GOBIN and move into place so that an interrupted build never leaves a
# half-written binary that the cache check above would accept.
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
v=github.com/prometheus/common/version
GOBIN="$scratch" go install -trimpath \
  -ldflags "-s -w -X $v.Version=$release -X $v.Revision=go-module-$PROMETHEUS_VERSION -X $v.Branch=release" \
  "github.com/prometheus/prometheus/cmd/promtool@$PROMETHEUS_VERSION" >&2
# $scratch may be on another filesystem: copy next to the target, then rename (atomic).
cp "$scratch/promtool" "$OUT/.promtool.partial" && mv -f "$OUT/.promtool.partial" "$OUT/promtool"
"$OUT/promtool" --version >&2
echo "$OUT"
