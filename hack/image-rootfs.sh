#!/usr/bin/env bash
# Assembles the operator image's root filesystem in DEST: the binary, the shared libraries it
# links (found with ldd, copied from the Debian packages that own them), the Debian CA bundle and
# a passwd/group naming the numeric user. Nothing else: no shell, no package manager.
#
# One list for both ways of building the image: hack/build-image.sh (buildah, no registry) and
# the Dockerfile's builder stage (BuildKit) both call this script, and both images' runtime stage
# is the Dockerfile's `FROM scratch` stage.
#
# usage: hack/image-rootfs.sh BINARY DEST
set -euo pipefail
bin="$1"
dest="$2"
die() { echo "image-rootfs: $*" >&2; exit 1; }
[ -x "$bin" ] || die "$bin is not an executable"
[ ! -e "$dest" ] || [ -z "$(ls -A "$dest")" ] || die "$dest is not empty"
mkdir -p "$dest"

# Symbols stripped in the image only; the workspace's release profile stays untouched.
strip --strip-all -o "$dest/agentcore-operator" "$bin"
chmod 0755 "$dest/agentcore-operator"

# Every library the dynamic loader would map, plus the loader itself (the absolute path after
# "=>", or the bare path of the interpreter line). A missing library is an error, never skipped.
if ldd "$bin" | grep -q 'not found'; then die "unresolved libraries: $(ldd "$bin")"; fi
libs="$(ldd "$bin" | awk '/=> \//{print $3} /^[[:space:]]*\/[^ ]+ \(/{print $1}')"
for lib in $libs; do
  # Only files a Debian package installed: the image's contents are Debian's.
  real="$(readlink -f "$lib")"
  dpkg -S "$lib" >/dev/null 2>&1 || dpkg -S "$real" >/dev/null 2>&1 ||
    die "$lib is not from a Debian package"
  # The path the loader asks for, with the real file's content (no symlink chains to carry).
  mkdir -p "$dest$(dirname "$lib")"
  cp -L "$lib" "$dest$lib"
done

# The CA bundle of Debian's ca-certificates package, for TLS to AWS endpoints.
ca=/etc/ssl/certs/ca-certificates.crt
[ -s "$ca" ] || die "$ca missing (install ca-certificates)"
install -D -m 0644 "$ca" "$dest$ca"

# Names for the numeric user the image runs as (tools show names; the kubelet needs only numbers).
install -d "$dest/etc"
echo 'nonroot:x:65532:65532:nonroot:/:/sbin/nologin' > "$dest/etc/passwd"
echo 'nonroot:x:65532:' > "$dest/etc/group"
chmod 0644 "$dest/etc/passwd" "$dest/etc/group"
# Writable scratch space if the root filesystem is writable (the chart mounts it read-only).
install -d -m 1777 "$dest/tmp"
