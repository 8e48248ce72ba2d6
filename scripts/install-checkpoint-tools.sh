#!/usr/bin/env bash
# Installs what the agent's real tests and benches need: podman, runc, buildah, skopeo, Debian's
# docker-registry, busybox-static (a rootfs without pulling any image), and CRIU >= 4.1.
#
# Debian 12's CRIU 3.17 fails on this kernel ("Unexpected rt vDSO area bounds"), so CRIU is built
# from Debian 13's source package, fetched through a private apt configuration (no change to the
# system's sources), into a cache outside the repo, and linked as /usr/local/sbin/criu, which
# comes before /usr/sbin in the default PATH that podman → conmon → runc inherit.
# Idempotent: a second run finds everything in place and only prints the CRIU path. Run as root.
# `--print-mirror` prints the Debian mirror it would use (read from this machine's apt sources).
set -euo pipefail

CACHE_ROOT="${LAZARUS_CACHE_DIR:-$HOME/.cache/lazarus}"
CRIU_SUITE="${LAZARUS_CRIU_SUITE:-trixie}"
LINK=/usr/local/sbin/criu

say() { printf '[install-checkpoint-tools] %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

# The Debian mirror this machine's apt already uses: the first `deb` entry for this machine's
# own release suite (its VERSION_CODENAME; not -updates, -security, nor a third-party repo), from
# one-line sources (sources.list, *.list) or deb822 *.sources. The repo names no mirror;
# LAZARUS_DEBIAN_MIRROR overrides; LAZARUS_APT_ETC (default /etc/apt) and LAZARUS_HOST_SUITE let a
# test point at other sources.
host_debian_mirror() {
  if [ -n "${LAZARUS_DEBIAN_MIRROR:-}" ]; then echo "$LAZARUS_DEBIAN_MIRROR"; return; fi
  local etc="${LAZARUS_APT_ETC:-/etc/apt}" suite f
  suite="${LAZARUS_HOST_SUITE:-$(. /etc/os-release && echo "${VERSION_CODENAME:-}")}"
  [ -n "$suite" ] || return 0
  {
    for f in "$etc/sources.list" "$etc"/sources.list.d/*.list; do
      [ -f "$f" ] || continue
      awk -v suite="$suite" '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while (i < NF && $i !~ /\]$/) i++; i++ }
                         if ($(i+1) == suite) print $i }' "$f"
    done
    for f in "$etc"/sources.list.d/*.sources; do
      [ -f "$f" ] || continue
      awk -v suite="$suite" 'function flush() { if (types ~ /(^| )deb( |$)/ && en != "no") for (u = 1; u <= nu; u++) for (s = 1; s <= ns; s++) if (S[s] == suite) { print U[u]; break }
                              nu = 0; ns = 0; types = ""; en = "" }
           /^[ \t]*#/ { next }
           /^[ \t]*$/ { flush(); next }
           { k = tolower($1); sub(/:$/, "", k)
             if (k == "types") { types = $0; sub(/^[^:]*:[ \t]*/, "", types) }
             else if (k == "enabled") en = tolower($2)
             else if (k == "uris") for (i = 2; i <= NF; i++) U[++nu] = $i
             else if (k == "suites") for (i = 2; i <= NF; i++) S[++ns] = $i }
           END { flush() }' "$f"
    done
  } | head -1
}

if [ "${1:-}" = "--print-mirror" ]; then host_debian_mirror; exit 0; fi

[ "$(id -u)" = 0 ] || die "must run as root (apt-get, CRIU needs CAP_SYS_ADMIN)"
start=$(date +%s)
export DEBIAN_FRONTEND=noninteractive

# ---- Debian packages ---------------------------------------------------------------------------
PKGS=(podman runc conmon buildah skopeo docker-registry busybox-static uidmap zstd openssl python3
      build-essential dpkg-dev pkg-config libprotobuf-dev libprotobuf-c-dev protobuf-c-compiler
      protobuf-compiler python3-protobuf libnl-3-dev libnet1-dev libcap-dev libaio-dev
      libgnutls28-dev libbsd-dev libdrm-dev libnftables-dev iproute2 python3-yaml)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  say "apt-get install ${missing[*]}"
  apt-get update -qq
  # No recommends: they would pull Debian's CRIU 3.17 and a user-session D-Bus.
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# docker-registry's package may start a system instance on :5000; tests start their own.
if command -v systemctl >/dev/null && systemctl is-active --quiet docker-registry 2>/dev/null; then
  systemctl disable --now docker-registry >/dev/null 2>&1 || true
fi

# ---- CRIU from Debian 13's source package ------------------------------------------------------
criu_ok() { [ -x "$1/sbin/criu" ] && "$1/sbin/criu" --version >/dev/null 2>&1; }
existing=$(ls -d "$CACHE_ROOT"/criu/4.* 2>/dev/null | sort -V | tail -1 || true)
if [ -n "$existing" ] && criu_ok "$existing"; then
  PREFIX="$existing"
  say "cached: $PREFIX"
else
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  mkdir -p "$work/lists/partial" "$work/src"
  # A private apt configuration: a deb-src entry for the newer suite on this machine's own
  # mirror, its own lists directory.
  mirror=$(host_debian_mirror)
  [ -n "$mirror" ] || die "no Debian release entry in this machine's apt sources (set LAZARUS_DEBIAN_MIRROR)"
  cat >"$work/sources.list" <<EOF
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $CRIU_SUITE main
EOF
  APT=(-o "Dir::Etc::sourcelist=$work/sources.list" -o "Dir::Etc::sourceparts=-"
       -o "Dir::State::Lists=$work/lists" -o "APT::Get::List-Cleanup=0")
  say "fetching the CRIU source package from $CRIU_SUITE"
  apt-get "${APT[@]}" update -qq 2>/dev/null
  # The newest 4.x source in the suite; its upstream tarball is all the build needs (the Debian
  # packaging diff is not required, and some mirrors serve only the orig tarball reliably).
  debversion=$(apt-cache "${APT[@]}" showsrc criu | sed -n 's/^Version: \(4\..*\)/\1/p' | sort -V | tail -1)
  [ -n "$debversion" ] || die "no CRIU 4.x source in $CRIU_SUITE"
  version=${debversion%%-*}
  orig="criu_${version}.orig.tar.xz"
  want=$(apt-cache "${APT[@]}" showsrc "criu" | awk -v f="$orig" '$3==f && length($1)==64 {print $1; exit}')
  [ -n "$want" ] || die "no sha256 for $orig in the $CRIU_SUITE index"
  # apt-get source verifies each file it fetches against the signed index; a missing .dsc/.diff
  # makes it exit non-zero, so the orig tarball is checked again here.
  (cd "$work/src" && apt-get "${APT[@]}" source -qq --download-only "criu=$debversion" >/dev/null 2>&1 || true)
  [ -f "$work/src/$orig" ] || die "could not download $orig"
  echo "$want  $work/src/$orig" | sha256sum -c --quiet - || die "$orig checksum mismatch"
  tar -C "$work/src" -xf "$work/src/$orig"
  PREFIX="$CACHE_ROOT/criu/$version"
  say "building CRIU $version into $PREFIX"
  make -C "$work/src/criu-$version" -j"$(nproc)" criu >"$work/build.log" 2>&1 \
    || { tail -40 "$work/build.log" >&2; die "CRIU build failed"; }
  rm -rf "$PREFIX"; mkdir -p "$PREFIX/sbin"
  install -m 0755 "$work/src/criu-$version/criu/criu" "$PREFIX/sbin/criu"
fi

if [ "$(readlink "$LINK" 2>/dev/null || true)" != "$PREFIX/sbin/criu" ]; then
  mkdir -p "$(dirname "$LINK")"
  ln -sfn "$PREFIX/sbin/criu" "$LINK"
fi
"$LINK" --version >&2
if ! out=$("$LINK" check 2>&1); then
  say "criu check failed: $out"
  exit 1
fi
say "criu check: $out"
say "done in $(( $(date +%s) - start ))s"
echo "$PREFIX/sbin"
