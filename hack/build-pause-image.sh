#!/usr/bin/env bash
# Builds the pod sandbox ("pause") image from hack/pause/pause.c (static, no libraries) as an OCI
# archive, cached under the tools cache keyed by the source's hash. Prints the archive's path.
# No registry is reachable, so registry.k8s.io/pause cannot be pulled.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/apt.sh
. hack/lib/apt.sh

NAME="${PAUSE_IMAGE:-localhost/agentcore-pause:3.10}"
CACHE_ROOT="${AGENTCORE_TOOLS_DIR:-$HOME/.cache/agentcore-operator/tools}"
key="$(cat hack/pause/pause.c hack/build-pause-image.sh | sha256sum | cut -c1-12)"
OUT="$CACHE_ROOT/pause-$key.oci.tar"
if [ -s "$OUT" ]; then echo "$OUT"; exit 0; fi

apt_ensure buildah gcc libc6-dev
mkdir -p "$CACHE_ROOT"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
gcc -static -Os -s -o "$work/pause" hack/pause/pause.c
b=(buildah --root "$work/storage" --runroot "$work/run" --storage-driver vfs)
c="$("${b[@]}" from scratch)"
"${b[@]}" copy "$c" "$work/pause" /pause >/dev/null
"${b[@]}" config --entrypoint '["/pause"]' --user 65535:65535 "$c"
"${b[@]}" commit --quiet --format oci "$c" "$NAME" >/dev/null
"${b[@]}" push --quiet "$NAME" "oci-archive:$OUT.partial:$NAME" >&2
"${b[@]}" rm --all >/dev/null
"${b[@]}" rmi --all >/dev/null
mv -f "$OUT.partial" "$OUT"
echo "$OUT"
