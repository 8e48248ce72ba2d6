#!/usr/bin/env bash
# Builds etcd, kube-apiserver, kube-controller-manager and kube-scheduler from the Go module
# proxy into ~/.cache/lazarus/kube/<version>/bin, once per version. Re-running is a no-op.
#
# k8s.io/kubernetes cannot be `go get`-ed directly: its go.mod points every k8s.io/* staging
# module at ./staging/… . A throw-away module requires it and replaces each of those staging
# modules with its published v0.<minor>.<patch>; the list comes from the downloaded go.mod.
set -euo pipefail

KUBE_VERSION="${LAZARUS_KUBE_VERSION:-1.35.4}"
ETCD_VERSION="${LAZARUS_ETCD_VERSION:-3.6.16}"
CACHE_ROOT="${LAZARUS_CACHE_DIR:-$HOME/.cache/lazarus}"
OUT="$CACHE_ROOT/kube/v$KUBE_VERSION"
BIN="$OUT/bin"
COMPONENTS=(kube-apiserver kube-controller-manager kube-scheduler)

say() { printf '[kube-build] %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

all_present() {
  for c in "${COMPONENTS[@]}" etcd; do [ -x "$BIN/$c" ] || return 1; done
}
# The cache is checked before Go: a machine with the binaries needs no toolchain. Each binary is
# renamed into place only when complete, so presence means a finished build of this version.
if all_present; then
  say "cached: $BIN (v$KUBE_VERSION, etcd v$ETCD_VERSION)"
  echo "$BIN"
  exit 0
fi

command -v go >/dev/null || die "Go is not installed and $BIN is incomplete (need Go >= 1.24 on PATH to build Kubernetes v$KUBE_VERSION)"

# Test files may call this concurrently on a cold cache: one builds, the others wait for it.
mkdir -p "$OUT"
if command -v flock >/dev/null; then
  exec 9>"$OUT/.build.lock"
  flock 9
  if all_present; then
    say "built meanwhile by another run: $BIN"
    echo "$BIN"
    exit 0
  fi
fi

start=$(date +%s)
mkdir -p "$BIN" "$OUT/src/kube" "$OUT/src/etcd"
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local

# ---- Kubernetes --------------------------------------------------------------------------
say "downloading k8s.io/kubernetes v$KUBE_VERSION from the Go module proxy"
cd "$OUT/src/kube"
gomod_json=$(go mod download -json "k8s.io/kubernetes@v$KUBE_VERSION") \
  || die "cannot download k8s.io/kubernetes@v$KUBE_VERSION (is the Go module proxy reachable? GOPROXY=$(go env GOPROXY))"
upstream_gomod=$(printf '%s' "$gomod_json" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
[ -f "$upstream_gomod" ] || die "go mod download gave no go.mod for k8s.io/kubernetes"

staging_version="v0.${KUBE_VERSION#1.}"
staging_modules=$(awk '/=> \.\/staging\/src\// {print $1}' "$upstream_gomod" | sort -u)
[ -n "$staging_modules" ] || die "no staging replaces found in $upstream_gomod"
go_line=$(awk '/^go [0-9]/ {print $2; exit}' "$upstream_gomod")

{
  echo "module lazarus.dev/kube-build"
  echo
  echo "go ${go_line}"
  echo
  echo "require k8s.io/kubernetes v$KUBE_VERSION"
  echo
  for m in $staging_modules; do echo "replace $m => $m $staging_version"; done
} > go.mod
{
  echo "//go:build tools"
  echo
  echo "package tools"
  echo
  echo "import ("
  for c in "${COMPONENTS[@]}"; do echo "	_ \"k8s.io/kubernetes/cmd/$c\""; done
  echo ")"
} > tools.go
say "resolving $(echo "$staging_modules" | wc -l) staging modules at $staging_version"
go mod tidy >/dev/null 2>tidy.log || { cat tidy.log >&2; die "go mod tidy failed"; }

build_date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
minor="${KUBE_VERSION#1.}"; minor="${minor%%.*}"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=v$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date -X $pkg.gitCommit=lazarus-module-build"
done
for c in "${COMPONENTS[@]}"; do
  if [ -x "$BIN/$c" ]; then say "$c already built"; continue; fi
  say "building $c (this takes minutes the first time)"
  t0=$(date +%s)
  go build -trimpath -ldflags "$ldflags" -o "$BIN/$c.tmp" "k8s.io/kubernetes/cmd/$c"
  mv "$BIN/$c.tmp" "$BIN/$c"
  say "built $c in $(( $(date +%s) - t0 ))s"
done

# ---- etcd --------------------------------------------------------------------------------
if [ -x "$BIN/etcd" ]; then
  say "etcd already built"
  say "done in $(( $(date +%s) - start ))s: $BIN"
  echo "$BIN"
  exit 0
fi
say "building etcd v$ETCD_VERSION"
cd "$OUT/src/etcd"
cat > go.mod <<MOD
module lazarus.dev/etcd-build

go 1.24

require go.etcd.io/etcd/server/v3 v$ETCD_VERSION
MOD
cat > main.go <<'GO'
// etcd's server module exposes its whole command line as etcdmain.Main.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
go mod tidy >/dev/null 2>tidy.log || { cat tidy.log >&2; die "go mod tidy failed for etcd"; }
t0=$(date +%s)
go build -trimpath -ldflags "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=lazarus-module-build" -o "$BIN/etcd.tmp" .
mv "$BIN/etcd.tmp" "$BIN/etcd"
say "built etcd in $(( $(date +%s) - t0 ))s"

say "done in $(( $(date +%s) - start ))s: $BIN"
echo "$BIN"
