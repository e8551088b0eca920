#!/usr/bin/env bash
# Builds the operator image without a registry or a Docker engine, as a release would: the release
# binary plus the few Debian files it needs (hack/image-rootfs.sh), configured by the Dockerfile's
# own runtime stage (same user, entrypoint, labels), built with buildah and written as an OCI
# archive. Prints the archive's path.
#
# Environment:
#   IMAGE     image name (default: the chart's image.repository)
#   TAG       image tag (default: the crate version, which is the chart's appVersion)
#   OUT       archive path (default: target/images/agentcore-operator-$TAG.oci.tar)
#   AGENTCORE_OPERATOR_BINARY  an already built release binary (default: build it with cargo)
#   REVISION, SOURCE  the OCI revision and source labels (default: git HEAD, empty)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/apt.sh
. hack/lib/apt.sh
log() { echo "build-image: $*" >&2; }

apt_ensure buildah binutils ca-certificates

version="$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)"
IMAGE="${IMAGE:-$(sed -n 's/^  repository: \(.*\)$/\1/p' charts/agentcore-operator/values.yaml | head -n1)}"
TAG="${TAG:-$version}"
OUT="${OUT:-target/images/agentcore-operator-$TAG.oci.tar}"
REVISION="${REVISION:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}"
SOURCE="${SOURCE:-}"
[ -n "$IMAGE" ] && [ -n "$TAG" ] || { log "no image name or tag"; exit 1; }

bin="${AGENTCORE_OPERATOR_BINARY:-}"
if [ -z "$bin" ]; then
  log "cargo build --release -p agentcore-operator"
  cargo build --release --locked -p agentcore-operator --bin agentcore-operator >&2
  bin=target/release/agentcore-operator
fi

work="$(mktemp -d)"
store="$work/storage"
trap 'buildah --root "$store" --runroot "$work/run" --storage-driver vfs rmi --all >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
bash hack/image-rootfs.sh "$bin" "$work/context/rootfs"

# The Dockerfile's runtime stage, with only the COPY source swapped for the directory above.
stage="$(sed -n '/^# --- runtime/,$p' Dockerfile)"
copy_from='COPY --from=builder /rootfs/ /'
[ "$(grep -cxF "$copy_from" <<<"$stage")" = 1 ] || { log "the Dockerfile's runtime stage no longer has exactly one '$copy_from'"; exit 1; }
grep -qx 'FROM scratch' <<<"$stage" || { log "the Dockerfile's runtime stage is not FROM scratch"; exit 1; }
sed "s#^$copy_from\$#COPY rootfs/ /#" <<<"$stage" > "$work/context/Containerfile"

# A private vfs store in the scratch dir: nothing is left in /var/lib/containers, and vfs needs no
# overlay support from the kernel. Nothing runs in a container while building.
b=(buildah --root "$store" --runroot "$work/run" --storage-driver vfs)
log "buildah bud $IMAGE:$TAG"
"${b[@]}" bud --quiet --layers=false --format oci \
  --build-arg "VERSION=$version" --build-arg "REVISION=$REVISION" --build-arg "SOURCE=$SOURCE" \
  -f "$work/context/Containerfile" -t "$IMAGE:$TAG" "$work/context" >&2
mkdir -p "$(dirname "$OUT")"
rm -f "$OUT.partial"
"${b[@]}" push --quiet "$IMAGE:$TAG" "oci-archive:$OUT.partial:$IMAGE:$TAG" >&2
mv -f "$OUT.partial" "$OUT"
log "$IMAGE:$TAG: $(du -h "$OUT" | cut -f1) archive (uncompressed layer: $(du -sh "$work/context/rootfs" | cut -f1))"
echo "$(cd "$(dirname "$OUT")" && pwd)/$(basename "$OUT")"
