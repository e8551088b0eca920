# Sourced by hack/build-control-plane.sh and hack/build-node.sh: writes the go.mod of the wrapper
# module that builds Kubernetes commands from k8s.io/kubernetes at a given version.
#
# Why a wrapper module: k8s.io/kubernetes points its ~30 staging modules at ./staging with
# `replace` directives, so `go install k8s.io/kubernetes/cmd/...@vX` is refused. A small module
# that requires k8s.io/kubernetes and replaces every staging module by its published v0.X.Y
# builds the same code. The staging list is read from upstream's own go.mod, never hard-coded.

# k8s_wrapper_go_mod VERSION MODULE_NAME: prints the go.mod on stdout.
k8s_wrapper_go_mod() {
  local version="$1" name="$2" upstream_mod minor
  upstream_mod="$(go mod download -json "k8s.io/kubernetes@$version" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
  [ -f "$upstream_mod" ] || { echo "no go.mod for k8s.io/kubernetes@$version" >&2; return 1; }
  minor="${version#v1.}" # 34.4 -> staging modules are v0.34.4
  echo "module $name"
  echo
  grep -E '^go [0-9]' "$upstream_mod"
  # upstream's godebug block (either a single line or a parenthesised block)
  awk '/^godebug \(/{p=1} p{print} p&&/^\)/{p=0} /^godebug [^(]/{print}' "$upstream_mod"
  echo
  echo "require k8s.io/kubernetes $version"
  echo
  echo "replace ("
  # every `k8s.io/<m> => ./staging/src/k8s.io/<m>` becomes `k8s.io/<m> => k8s.io/<m> v0.X.Y`
  sed -n 's#^[[:space:]]*\(k8s\.io/[^ ]*\) => \./staging/src/.*#\1#p' "$upstream_mod" |
    while read -r m; do echo "	$m => $m v0.$minor"; done
  echo ")"
}

# k8s_version_ldflags VERSION: the -X flags that make /version and `--version` report VERSION
# (without them it says v0.0.0 and version-checking clients such as Helm break).
k8s_version_ldflags() {
  local version="$1" major_minor flags="" pkg
  major_minor="${version#v1.}"
  major_minor="${major_minor%%.*}"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$major_minor"
    flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  echo "$flags"
}
