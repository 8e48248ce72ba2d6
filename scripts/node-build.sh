#!/usr/bin/env bash
# Builds what a real node needs besides Debian's runc, conmon, CNI plugins and the CRIU of
# install-checkpoint-tools.sh, from the Go module proxy, into ~/.cache/lazarus, once per version:
#   kube/v<K>/bin/{kubelet,kubectl}     same throw-away module and ldflags as kube-build.sh
#   containerd/v<C>/bin/{containerd,containerd-shim-runc-v2,ctr}
#   cri-o/v<O>/bin/{crio,pinns}
# Prints one line per part, `name=dir`. Re-running is a no-op (about 10 ms).
#
# Measured on this 2-core machine, cold (module downloads included): kubelet+kubectl ~2 min once
# the control plane's module is built, containerd ~3 min, CRI-O ~4 min.
set -euo pipefail
cd "$(dirname "$0")/.."

KUBE_VERSION="${LAZARUS_KUBE_VERSION:-1.35.4}"
CONTAINERD_VERSION="${LAZARUS_CONTAINERD_VERSION:-2.3.7}"
# The only CRI-O version the Go module proxy serves; others answer 403.
CRIO_VERSION="${LAZARUS_CRIO_VERSION:-1.34.0}"
CACHE_ROOT="${LAZARUS_CACHE_DIR:-$HOME/.cache/lazarus}"

say() { printf '[node-build] %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }
present() { for f in "$@"; do [ -x "$f" ] || return 1; done; }
# Serialises concurrent runs per part; presence is checked again once the lock is held.
lock() { mkdir -p "$1"; exec 9>"$1/.build.lock"; command -v flock >/dev/null && flock 9; }

export GOFLAGS=-mod=mod GOTOOLCHAIN=local

# ---- kubelet and kubectl -----------------------------------------------------------------
kube_bin="$(bash scripts/kube-build.sh)"
kube_out="$(dirname "$kube_bin")"
if ! present "$kube_bin/kubelet" "$kube_bin/kubectl"; then
  command -v go >/dev/null || die "Go is not installed (need Go >= 1.24 to build kubelet v$KUBE_VERSION)"
  lock "$kube_out"
  if ! present "$kube_bin/kubelet" "$kube_bin/kubectl"; then
    # kube-build.sh left its module in src/kube; a second tools file pulls in kubelet and kubectl.
    cd "$kube_out/src/kube"
    printf '//go:build tools\n\npackage tools\n\nimport (\n\t_ "k8s.io/kubernetes/cmd/kubelet"\n\t_ "k8s.io/kubernetes/cmd/kubectl"\n)\n' > tools_node.go
    go mod tidy >/dev/null 2>tidy-node.log || { cat tidy-node.log >&2; die "go mod tidy (kubelet) failed"; }
    minor="${KUBE_VERSION#1.}"; minor="${minor%%.*}"
    ldflags="-s -w"
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      ldflags+=" -X $pkg.gitVersion=v$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
      ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.gitCommit=lazarus-module-build"
    done
    for c in kubelet kubectl; do
      [ -x "$kube_bin/$c" ] && continue
      say "building $c v$KUBE_VERSION"; t0=$(date +%s)
      CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$kube_bin/$c.tmp" "k8s.io/kubernetes/cmd/$c"
      mv "$kube_bin/$c.tmp" "$kube_bin/$c"
      say "built $c in $(( $(date +%s) - t0 ))s"
    done
    cd - >/dev/null
  fi
fi
echo "kube=$kube_bin"

# ---- containerd --------------------------------------------------------------------------
ctd_out="$CACHE_ROOT/containerd/v$CONTAINERD_VERSION"
ctd_bin="$ctd_out/bin"
ctd_parts=(containerd containerd-shim-runc-v2 ctr)
if ! present "${ctd_parts[@]/#/$ctd_bin/}"; then
  command -v go >/dev/null || die "Go is not installed (need it to build containerd v$CONTAINERD_VERSION)"
  lock "$ctd_out"
  if ! present "${ctd_parts[@]/#/$ctd_bin/}"; then
    say "building containerd v$CONTAINERD_VERSION"; t0=$(date +%s)
    tmp="$ctd_out/gobin.tmp"; rm -rf "$tmp"; mkdir -p "$tmp" "$ctd_bin"
    # The module has no replace directives, so `go install pkg@version` builds it as released.
    pkgs=(); for p in "${ctd_parts[@]}"; do pkgs+=("github.com/containerd/containerd/v2/cmd/$p@v$CONTAINERD_VERSION"); done
    GOBIN="$tmp" CGO_ENABLED=0 GOFLAGS= go install -trimpath -ldflags "-s -w -X github.com/containerd/containerd/v2/version.Version=v$CONTAINERD_VERSION" "${pkgs[@]}" \
      || die "cannot build containerd v$CONTAINERD_VERSION from the Go module proxy"
    for p in "${ctd_parts[@]}"; do mv "$tmp/$p" "$ctd_bin/$p"; done
    rm -rf "$tmp"
    say "built containerd in $(( $(date +%s) - t0 ))s"
  fi
fi
echo "containerd=$ctd_bin"

# ---- CRI-O and pinns ---------------------------------------------------------------------
crio_out="$CACHE_ROOT/cri-o/v$CRIO_VERSION"
crio_bin="$crio_out/bin"
if ! present "$crio_bin/crio" "$crio_bin/pinns"; then
  command -v go >/dev/null || die "Go is not installed (need it to build CRI-O v$CRIO_VERSION)"
  command -v gcc >/dev/null || die "gcc is needed to build CRI-O (cgo) and pinns"
  lock "$crio_out"
  if ! present "$crio_bin/crio" "$crio_bin/pinns"; then
    say "building CRI-O v$CRIO_VERSION"; t0=$(date +%s)
    src="$crio_out/src"; mkdir -p "$src" "$crio_bin"
    # `go install …@v1.34.0` fails on the proxy's deprecation lookup (it asks for the version
    # list, which answers 403); a throw-away module that requires the release does not ask.
    cat > "$src/go.mod" <<MOD
module lazarus.dev/crio-build

go 1.24

require github.com/cri-o/cri-o v$CRIO_VERSION
MOD
    printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/cri-o/cri-o/cmd/crio"\n' > "$src/tools.go"
    (cd "$src" && go mod tidy >/dev/null 2>tidy.log) || { cat "$src/tidy.log" >&2; die "go mod tidy failed for CRI-O"; }
    tags="containers_image_openpgp exclude_graphdriver_btrfs exclude_graphdriver_devicemapper"
    (cd "$src" && CGO_ENABLED=1 go build -trimpath -tags "$tags" \
      -ldflags "-s -w -X github.com/cri-o/cri-o/internal/version.version=$CRIO_VERSION" \
      -o "$crio_bin/crio.tmp" github.com/cri-o/cri-o/cmd/crio) || die "CRI-O build failed"
    mv "$crio_bin/crio.tmp" "$crio_bin/crio"
    modsrc="$(cd "$src" && go list -m -f '{{.Dir}}' github.com/cri-o/cri-o)"
    [ -d "$modsrc/pinns/src" ] || die "no pinns sources in $modsrc"
    gcc -std=c99 -Os -static -o "$crio_bin/pinns.tmp" "$modsrc"/pinns/src/*.c || die "pinns build failed"
    mv "$crio_bin/pinns.tmp" "$crio_bin/pinns"
    say "built CRI-O and pinns in $(( $(date +%s) - t0 ))s"
  fi
fi
echo "crio=$crio_bin"
