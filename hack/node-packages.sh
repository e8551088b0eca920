#!/usr/bin/env bash
# Installs the Debian packages a test node runs on (only those missing): containerd (CRI), runc,
# the CNI plugins (bridge, host-local, loopback in /usr/lib/cni), iptables and conntrack for
# kube-proxy, and buildah for the images. Prints the CNI plugin directory.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/apt.sh
. hack/lib/apt.sh
apt_ensure containerd runc containernetworking-plugins iptables conntrack buildah
# Debian's containerd package may start its own daemon on machines with an init system; the test
# node runs its own containerd with its own socket and state, so the two never meet.
echo /usr/lib/cni
