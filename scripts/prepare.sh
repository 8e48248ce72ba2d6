#!/usr/bin/env bash
# Everything `npm test` and `npm run demo` need, installed on first use and cached after:
# npm packages (when node_modules is missing or older than the lockfile), the Kubernetes
# control plane and helm (for the chart's tests) built from the Go module proxy, and — as root —
# the checkpoint tools and what real nodes need: kubelet, containerd and CRI-O
# (scripts/node-build.sh) and the images (scripts/images.sh: Lazarus' own from its Dockerfile,
# pause, busybox).
# `prepare.sh kube` stops after the control plane. `prepare.sh demo` (npm run demo) installs
# everything as root, for the demo's real-node opening, and only the control plane otherwise: the
# fake-node acts need no CRIU, and the demo says in one line what it skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[prepare] %s\n' "$*" >&2; }

if [ -L node_modules ]; then
  : # a shared node_modules (git worktrees): whoever owns it keeps it current; npm ci would wipe it
elif [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm packages (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
fi

bash scripts/kube-build.sh >/dev/null
[ "${1:-}" = kube ] && exit 0
[ "${1:-}" = demo ] && [ "$(id -u)" != 0 ] && exit 0
[ "${1:-}" = demo ] || bash scripts/helm-build.sh >/dev/null

if [ -x scripts/install-checkpoint-tools.sh ]; then
  if [ "$(id -u)" = 0 ]; then
    bash scripts/install-checkpoint-tools.sh >/dev/null
    bash scripts/node-build.sh >/dev/null
    for image in pause busybox lazarus; do bash scripts/images.sh "$image" >/dev/null; done
  elif [ "${CI:-}" = true ]; then
    say "error: CI needs root to install CRIU, podman and the registry"; exit 1
  else
    say "not root: skipping CRIU/podman install; checkpoint tests will say what is missing"
  fi
fi
