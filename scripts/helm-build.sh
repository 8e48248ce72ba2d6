#!/usr/bin/env bash
# Builds helm from the Go module proxy into ~/.cache/lazarus/helm/<version>/bin, once per
# version; re-running is a no-op. Prints the binary's directory.
set -euo pipefail

HELM_VERSION="${LAZARUS_HELM_VERSION:-3.21.4}"
CACHE_ROOT="${LAZARUS_CACHE_DIR:-$HOME/.cache/lazarus}"
OUT="$CACHE_ROOT/helm/v$HELM_VERSION"
BIN="$OUT/bin"

say() { printf '[helm-build] %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

if [ -x "$BIN/helm" ]; then
  say "cached: $BIN/helm (v$HELM_VERSION)"
  echo "$BIN"
  exit 0
fi
command -v go >/dev/null || die "Go is not installed and $BIN/helm is missing (need Go on PATH to build helm v$HELM_VERSION)"

mkdir -p "$OUT"
# Test files may ask concurrently on a cold cache: one builds, the others wait for it.
if command -v flock >/dev/null; then
  exec 9>"$OUT/.build.lock"
  flock 9
  if [ -x "$BIN/helm" ]; then echo "$BIN"; exit 0; fi
fi

start=$(date +%s)
say "building helm v$HELM_VERSION from the Go module proxy"
staging="$OUT/.staging"
rm -rf "$staging"
# The version is stamped the way helm's own Makefile does, so `helm version` tells the truth.
CGO_ENABLED=0 GOTOOLCHAIN=local GOBIN="$staging" go install \
  -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=v$HELM_VERSION" \
  "helm.sh/helm/v3/cmd/helm@v$HELM_VERSION" \
  || die "go install helm.sh/helm/v3/cmd/helm@v$HELM_VERSION failed (GOPROXY=$(go env GOPROXY))"
mkdir -p "$BIN"
mv "$staging/helm" "$BIN/helm"   # renamed into place only when complete
rm -rf "$staging"
say "built helm v$HELM_VERSION in $(( $(date +%s) - start ))s: $BIN/helm"
echo "$BIN"
