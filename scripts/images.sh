#!/usr/bin/env bash
# Every container image the real-node tests need, built here (no image registry is reachable) and
# cached as OCI archives under ${LAZARUS_CACHE_DIR:-$HOME/.cache/lazarus}/images/.
#
#   scripts/images.sh base            stand-in for docker.io/library/node:20-bookworm-slim
#   scripts/images.sh lazarus         the repo's Dockerfile, unchanged -> localhost/lazarus:<content hash>
#   scripts/images.sh kube-scheduler  scratch + the harness' static kube-scheduler -> kube-scheduler:v1.35.4
#   scripts/images.sh pause           scratch + static pause.c from k8s.io/kubernetes -> pause:3.10
#   scripts/images.sh busybox         scratch + busybox-static and its applet links -> busybox:stable
#   scripts/images.sh push ARCHIVE DEST_REF   skopeo copy oci-archive:ARCHIVE docker://DEST_REF (plain http)
#
# Each build subcommand prints the path of an OCI archive (use it as `oci-archive:PATH`) on stdout
# and logs to stderr. Archives are keyed by what determines them (versions, content hashes) and are
# renamed into place only when complete, so an existing archive is a finished build: re-running is
# a cache hit. Builds hold a flock on the images directory, so concurrent runs wait for each other.
# buildah runs with the vfs driver, chroot isolation and a private storage root under the cache.
#
# Measured on the 2-core test machine while a Go build and other test runs shared it (wall clock;
# cold = nothing cached for that subcommand, warm = its archive cached):
#   base            cold  72 s    warm 0.3 s  (debootstrap minbase from the host's apt mirror)
#   lazarus         cold 118 s    warm 0.2 s  (base cached; two npm ci, tsc, apt-get util-linux,
#                                              ~10 s of check; with base cold add ~72 s)
#   kube-scheduler  cold 2.3 s    warm 0.2 s  (binary already built; warm hashes the 71 MB binary)
#   pause           cold 0.4 s    warm 0.02 s
#   busybox         cold 0.7 s    warm 0.03 s
#   push            0.3 s each to a loopback docker-registry (1.3 s for all five, lazarus 137 MB)
# vfs storage keeps only the base image (~240 MB); each lazarus archive is ~140 MB and old ones
# are not deleted (other worktrees may use them): remove stale lazarus-*.oci.tar by hand.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_ROOT="${LAZARUS_CACHE_DIR:-$HOME/.cache/lazarus}"
IMAGES="$CACHE_ROOT/images"
STORE_ROOT="$IMAGES/storage/root"
STORE_RUNROOT="$IMAGES/storage/runroot"
KUBE_VERSION="${LAZARUS_KUBE_VERSION:-1.35.4}"
PAUSE_TAG="3.10"
BASE_REF="docker.io/library/node:20-bookworm-slim"
SUITE=bookworm
# Bump when a recipe below changes in a way its inputs do not show.
RECIPE=1

say() { printf '[images] %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

bah() { buildah --storage-driver vfs --root "$STORE_ROOT" --runroot "$STORE_RUNROOT" "$@"; }
short_hash() { sha256sum | cut -c1-16; }
file_hash() { sha256sum "$1" | cut -c1-16; }

lock() {
  mkdir -p "$IMAGES"
  exec 9>"$IMAGES/.lock"
  flock 9
}

# Writes image REF from storage to ARCHIVE (atomically).
export_archive() {
  local ref="$1" archive="$2"
  rm -f "$archive.tmp"
  bah push --quiet "$ref" "oci-archive:$archive.tmp:$ref" >/dev/null
  mv -f "$archive.tmp" "$archive"
}

# vfs keeps full copies: images other than the base leave the storage once exported.
drop_from_storage() {
  bah rmi "$1" >/dev/null 2>&1 || true
  bah rmi --prune >/dev/null 2>&1 || true
}

# Makes sure REF is in the private storage (after the storage was wiped but the archive kept).
ensure_in_storage() {
  local ref="$1" archive="$2" id
  bah inspect --type image "$ref" >/dev/null 2>&1 && return 0
  say "loading $ref from $archive"
  id=$(bah pull --quiet "oci-archive:$archive")
  bah tag "$id" "$ref"
}

# Runs the build function FN for ARCHIVE unless it exists; prints ARCHIVE.
cached() {
  local archive="$1" fn="$2" t0
  if [ -s "$archive" ]; then say "cached: $archive"; echo "$archive"; return 0; fi
  lock
  if [ -s "$archive" ]; then say "built meanwhile by another run: $archive"; echo "$archive"; return 0; fi
  t0=$(date +%s)
  "$fn" "$archive" >&2
  say "built $archive in $(( $(date +%s) - t0 )) s"
  echo "$archive"
}

# ---- base: stand-in for node:20-bookworm-slim ----------------------------------------------------
# The Debian mirror(s) this machine's apt uses, as one-line "deb URI SUITE main" entries for
# bookworm* suites (deb822 .sources and one-line .list files). Never written into the repo.
host_debian_sources() {
  {
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
      [ -f "$f" ] || continue
      awk '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                         if ($(i+1) ~ /^'"$SUITE"'/) print "deb " $i " " $(i+1) " main" }' "$f"
    done
    for f in /etc/apt/sources.list.d/*.sources; do
      [ -f "$f" ] || continue
      awk 'function flush() { if (types ~ /(^| )deb( |$)/ && en != "no") for (u in U) for (s in S) if (S[s] ~ /^'"$SUITE"'/) print "deb " U[u] " " S[s] " main"
                              delete U; delete S; types = ""; en = "" }
           /^[ \t]*#/ { next }
           /^[ \t]*$/ { flush(); next }
           { k = tolower($1); sub(/:$/, "", k)
             if (k == "types") { types = $0; sub(/^[^:]*:[ \t]*/, "", types) }
             else if (k == "enabled") en = tolower($2)
             else if (k == "uris") for (i = 2; i <= NF; i++) U[i] = $i
             else if (k == "suites") for (i = 2; i <= NF; i++) S[i] = $i }
           END { flush() }' "$f"
    done
  } | awk '!seen[$0]++'
}

host_mirror() {
  host_debian_sources | awk -v s="$SUITE" '$3 == s { print $2; exit }'
}

# apt settings of this machine that a build inside the image needs too (proxies, CA, validity).
host_apt_settings() {
  apt-config dump 2>/dev/null \
    | grep -E '^Acquire::((https?|ftp)::(Proxy|CaInfo|CaPath|Verify-Peer|Verify-Host)|Check-Valid-Until|Check-Date)' || true
}

ca_bundle() {
  local b="${NODE_EXTRA_CA_CERTS:-/etc/ssl/certs/ca-certificates.crt}"
  [ -s "$b" ] || b=/etc/ssl/certs/ca-certificates.crt
  [ -s "$b" ] || die "no CA bundle at $b"
  echo "$b"
}

base_key() {
  {
    echo "recipe $RECIPE suite $SUITE"
    node --version; npm --version
    dpkg-query -W -f='${Version}\n' nodejs
    host_debian_sources; host_apt_settings
    sha256sum "$(ca_bundle)"
  } | short_hash
}

base_archive() { echo "$IMAGES/node-20-bookworm-slim-$(base_key).oci.tar"; }

build_base() {
  local archive="$1" mirror npm_dir work rootfs ctr mnt node_version ca
  command -v node >/dev/null || die "node is not installed"
  if ! command -v debootstrap >/dev/null; then
    say "installing debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends debootstrap >&2 \
      || die "cannot install debootstrap"
  fi
  mirror=$(host_mirror)
  [ -n "$mirror" ] || die "no $SUITE entry in this machine's apt sources"
  npm_dir="$(npm root -g)/npm"
  [ -f "$npm_dir/bin/npm-cli.js" ] || die "no npm at $npm_dir"
  node_version=$(node --version)
  ca=$(ca_bundle)

  work=$(mktemp -d "$IMAGES/base-work.XXXXXX")
  # shellcheck disable=SC2064
  trap "rm -rf '$work'" EXIT
  rootfs="$work/rootfs"
  say "debootstrap --variant=minbase $SUITE (from this machine's apt mirror)"
  debootstrap --variant=minbase "$SUITE" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log" >&2; die "debootstrap failed"; }

  say "copying in node $node_version and npm $(npm --version)"
  # The package's files (the npm it shipped is replaced below by the global one, which is newer).
  dpkg -L nodejs | while IFS= read -r f; do
    case "$f" in "$npm_dir"|"$npm_dir"/*|/usr/share/doc/*|/usr/share/man/*|/usr/include/*) continue;; esac
    if [ -L "$f" ] || [ -f "$f" ]; then printf '%s\n' "${f#/}"; fi
  done > "$work/node.files"
  tar -C / --no-recursion -cf - -T "$work/node.files" | tar -C "$rootfs" -xpf -
  mkdir -p "$rootfs$(dirname "$npm_dir")"
  tar -C "$(dirname "$npm_dir")" -cf - npm | tar -C "$rootfs$(dirname "$npm_dir")" -xpf -
  ln -sfn ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/bin/npm"
  ln -sfn ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/bin/npx"

  say "CA bundle, apt sources and apt settings of this machine"
  mkdir -p "$rootfs/etc/ssl/certs" "$rootfs/usr/local/share/ca-certificates"
  cp "$ca" "$rootfs/etc/ssl/certs/ca-certificates.crt"
  # Kept as local CAs too, so an update-ca-certificates inside a later build keeps them.
  cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/" 2>/dev/null || true
  host_debian_sources > "$rootfs/etc/apt/sources.list"
  rm -f "$rootfs"/etc/apt/sources.list.d/*
  host_apt_settings > "$rootfs/etc/apt/apt.conf.d/90host-settings"
  [ -s "$rootfs/etc/apt/apt.conf.d/90host-settings" ] || rm -f "$rootfs/etc/apt/apt.conf.d/90host-settings"

  # Like the official image: a `node` user (1000), no apt lists or caches, an empty /dev.
  chroot "$rootfs" groupadd --gid 1000 node
  chroot "$rootfs" useradd --uid 1000 --gid node --shell /bin/bash --create-home node
  chroot "$rootfs" /usr/bin/node --version >/dev/null || die "node does not run in the rootfs"
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
    "$rootfs"/var/log/* "$rootfs"/dev/* "$rootfs"/tmp/* "$rootfs"/debootstrap

  say "committing $BASE_REF"
  ctr=$(bah from --quiet scratch)
  mnt=$(bah mount "$ctr")
  tar -C "$rootfs" -cf - . | tar -C "$mnt" -xpf -
  bah umount "$ctr" >/dev/null
  bah config \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env NODE_VERSION="${node_version#v}" \
    --env NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt \
    --cmd node --os linux --arch amd64 \
    --label org.opencontainers.image.description="local stand-in for $BASE_REF" \
    "$ctr"
  bah commit --quiet --rm "$ctr" "$BASE_REF" >/dev/null
  export_archive "$BASE_REF" "$archive"
  rm -rf "$work"
  trap - EXIT
}

cmd_base() {
  local archive
  archive=$(cached "$(base_archive)" build_base)
  ensure_in_storage "$BASE_REF" "$archive"
  echo "$archive"
}

# ---- lazarus: the repo's Dockerfile, unchanged ----------------------------------------------------
# The build context sources: every COPY in the Dockerfile without --from=.
dockerfile_sources() {
  awk 'toupper($1) == "COPY" { from = 0; n = 0
         for (i = 2; i <= NF; i++) { if ($i ~ /^--from=/) from = 1; else if ($i !~ /^--/) a[++n] = $i }
         if (!from) for (i = 1; i < n; i++) print a[i] }' "$REPO/Dockerfile" | sort -u
}

lazarus_hash() {
  local base="$1"
  {
    echo "recipe $RECIPE base $(basename "$base")"
    cd "$REPO"
    # shellcheck disable=SC2046
    find Dockerfile $(dockerfile_sources) \( -type f -o -type l \) -print0 | LC_ALL=C sort -z \
      | xargs -0 sha256sum
  } | short_hash
}

LAZARUS_REF=""
build_lazarus() {
  local archive="$1" out
  say "buildah bud $REPO/Dockerfile -> $LAZARUS_REF"
  # A short name (node:20-bookworm-slim) with --pull=never resolves through registries.conf' aliases
  # to docker.io/library/node, which is the stand-in in the private storage.
  if ! out=$(cd "$REPO" && bah bud --pull=never --isolation chroot --layers=false --quiet \
      -f Dockerfile -t "$LAZARUS_REF" . 2>&1); then
    printf '%s\n' "$out" | tail -40 >&2
    die "buildah bud failed"
  fi
  verify_lazarus
  export_archive "$LAZARUS_REF" "$archive"
  drop_from_storage "$LAZARUS_REF"
}

# Runs the image's entrypoint with --help, as the image's user, which must be 65532. buildah run
# with chroot isolation: podman/runc cannot start containers here (runc "error setting rlimit type
# 7: operation not permitted": podman asks for a higher RLIMIT_NOFILE/NPROC than this machine's
# hard limits, and root lacks CAP_SYS_RESOURCE).
verify_lazarus() {
  local ctr uid help entrypoint=()
  mapfile -t entrypoint < <(bah inspect --type image "$LAZARUS_REF" \
    | node -e 'for (const a of JSON.parse(require("fs").readFileSync(0, "utf8")).OCIv1.config.Entrypoint ?? []) console.log(a)')
  [ "${#entrypoint[@]}" -gt 0 ] || die "$LAZARUS_REF has no entrypoint"
  ctr=$(bah from --quiet --pull=never "$LAZARUS_REF")
  uid=$(bah run --isolation chroot "$ctr" -- id -u) || { bah rm "$ctr" >/dev/null; die "cannot run id in $LAZARUS_REF"; }
  help=$(bah run --isolation chroot "$ctr" -- "${entrypoint[@]}" --help 2>&1) \
    || { printf '%s\n' "$help" >&2; bah rm "$ctr" >/dev/null; die "lazarus --help failed in $LAZARUS_REF"; }
  bah rm "$ctr" >/dev/null
  [ "$uid" = 65532 ] || die "$LAZARUS_REF runs as UID '$uid', not 65532"
  say "verified: '${entrypoint[*]} --help' runs as UID $uid: $(printf '%s\n' "$help" | head -1)"
}

cmd_lazarus() {
  local base hash
  base=$(cmd_base)
  hash=$(lazarus_hash "$base")
  LAZARUS_REF="localhost/lazarus:$hash"
  cached "$IMAGES/lazarus-$hash.oci.tar" build_lazarus
  # Every source change makes a new ~140 MB archive: keep the newest four (other checkouts may
  # still use a recent one), drop older ones.
  ls -t "$IMAGES"/lazarus-*.oci.tar 2>/dev/null | tail -n +5 | xargs -r rm -f
}

# ---- kube-scheduler ------------------------------------------------------------------------------
kube_scheduler_bin() {
  local bin="${LAZARUS_KUBE_SCHEDULER_BIN:-$CACHE_ROOT/kube/v$KUBE_VERSION/bin/kube-scheduler}"
  if [ ! -x "$bin" ]; then
    # kube-build.sh holds a lock while building, so this waits for a build already under way.
    say "no $bin yet: scripts/kube-build.sh (waits for a build already running)"
    bin="$(LAZARUS_KUBE_VERSION="$KUBE_VERSION" bash "$REPO/scripts/kube-build.sh")/kube-scheduler"
  fi
  [ -x "$bin" ] || die "no kube-scheduler binary at $bin"
  echo "$bin"
}

KS_BIN=""
build_kube_scheduler() {
  local archive="$1" ref="kube-scheduler:v$KUBE_VERSION" ctr
  file -L "$KS_BIN" | grep -q 'statically linked' || die "$KS_BIN is not statically linked"
  ctr=$(bah from --quiet scratch)
  bah copy --chmod 0755 "$ctr" "$KS_BIN" /usr/local/bin/kube-scheduler >/dev/null
  # The overlay's Deployment runs `command: [kube-scheduler, ...]`, resolved through PATH.
  bah config --env PATH=/usr/local/bin:/usr/bin:/bin --entrypoint '["/usr/local/bin/kube-scheduler"]' \
    --user 65532:65532 --os linux --arch amd64 "$ctr"
  bah commit --quiet --rm "$ctr" "localhost/$ref" >/dev/null
  export_archive "localhost/$ref" "$archive"
  drop_from_storage "localhost/$ref"
}

cmd_kube_scheduler() {
  KS_BIN=$(kube_scheduler_bin)
  cached "$IMAGES/kube-scheduler-v$KUBE_VERSION-$(file_hash "$KS_BIN").oci.tar" build_kube_scheduler
}

# ---- pause ---------------------------------------------------------------------------------------
pause_src() {
  local modcache src
  command -v go >/dev/null || die "Go is needed to find k8s.io/kubernetes@v$KUBE_VERSION's pause.c"
  modcache=$(go env GOMODCACHE)
  src="$modcache/k8s.io/kubernetes@v$KUBE_VERSION/build/pause/linux/pause.c"
  if [ ! -f "$src" ]; then
    say "downloading k8s.io/kubernetes@v$KUBE_VERSION for pause.c"
    (cd "$(mktemp -d)" && GOFLAGS=-mod=mod go mod download "k8s.io/kubernetes@v$KUBE_VERSION") >&2
  fi
  [ -f "$src" ] || die "no $src"
  echo "$src"
}

PAUSE_SRC=""
build_pause() {
  local archive="$1" ref="localhost/pause:$PAUSE_TAG" work ctr
  work=$(mktemp -d "$IMAGES/pause-work.XXXXXX")
  gcc -Os -Wall -Werror -static -DVERSION="v$PAUSE_TAG-lazarus" -o "$work/pause" "$PAUSE_SRC" \
    || { rm -rf "$work"; die "gcc failed (static glibc comes with libc6-dev)"; }
  strip "$work/pause"
  ctr=$(bah from --quiet scratch)
  bah copy --chmod 0755 "$ctr" "$work/pause" /pause >/dev/null
  bah config --entrypoint '["/pause"]' --user 65535:65535 --os linux --arch amd64 "$ctr"
  bah commit --quiet --rm "$ctr" "$ref" >/dev/null
  rm -rf "$work"
  export_archive "$ref" "$archive"
  drop_from_storage "$ref"
}

cmd_pause() {
  PAUSE_SRC=$(pause_src)
  cached "$IMAGES/pause-$PAUSE_TAG-$({ cat "$PAUSE_SRC"; gcc --version | head -1; echo "recipe $RECIPE"; } | short_hash).oci.tar" build_pause
}

# ---- busybox -------------------------------------------------------------------------------------
busybox_bin() {
  local b
  b=$(dpkg -L busybox-static 2>/dev/null | grep -E '/bin/busybox$' | head -1) || true
  [ -n "$b" ] && [ -x "$b" ] || die "busybox-static is not installed (apt-get install busybox-static)"
  echo "$b"
}

BB_BIN=""
build_busybox() {
  local archive="$1" ref="localhost/busybox:stable" ctr mnt applet
  file -L "$BB_BIN" | grep -q 'statically linked' || die "$BB_BIN is not statically linked"
  ctr=$(bah from --quiet scratch)
  mnt=$(bah mount "$ctr")
  mkdir -p "$mnt/bin" "$mnt/sbin" "$mnt/usr/bin" "$mnt/usr/sbin" "$mnt/tmp" "$mnt/etc" "$mnt/root"
  chmod 1777 "$mnt/tmp"
  install -m 0755 "$BB_BIN" "$mnt/bin/busybox"
  "$BB_BIN" --list-full | while IFS= read -r applet; do
    [ "$applet" = bin/busybox ] && continue
    ln -sf /bin/busybox "$mnt/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$mnt/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\n' > "$mnt/etc/group"
  bah umount "$ctr" >/dev/null
  bah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --cmd sh \
    --os linux --arch amd64 "$ctr"
  bah commit --quiet --rm "$ctr" "$ref" >/dev/null
  export_archive "$ref" "$archive"
  drop_from_storage "$ref"
}

cmd_busybox() {
  BB_BIN=$(busybox_bin)
  cached "$IMAGES/busybox-$(dpkg-query -W -f='${Version}' busybox-static | tr ':+~' '___')-$(file_hash "$BB_BIN").oci.tar" build_busybox
}

# ---- push ----------------------------------------------------------------------------------------
cmd_push() {
  [ $# -eq 2 ] || die "usage: $0 push ARCHIVE DEST_REF"
  [ -s "$1" ] || die "no archive $1"
  skopeo copy --quiet --dest-tls-verify=false --format oci "oci-archive:$1" "docker://$2" >&2
  say "pushed $2"
}

case "${1:-}" in
  base) cmd_base ;;
  lazarus) cmd_lazarus ;;
  kube-scheduler) cmd_kube_scheduler ;;
  pause) cmd_pause ;;
  busybox) cmd_busybox ;;
  push) shift; cmd_push "$@" ;;
  *) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
