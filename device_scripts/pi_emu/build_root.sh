#!/usr/bin/env bash
# Build (once) an arm64 Debian root that runs the edgeq device runner under QEMU user mode.
#
#   sudo device_scripts/pi_emu/build_root.sh               # build if needed, print a summary
#   sudo device_scripts/pi_emu/build_root.sh --print-path  # build if needed, print only the path
#   sudo device_scripts/pi_emu/build_root.sh --binfmt-only # only make arm64 binaries runnable
#
# The root lands in ${EDGEQ_PI_ROOT_CACHE:-/var/cache/edgeq}/pi-root-<KEY>, KEY naming every
# input (suite, Python, ai-edge-litert, numpy, this script's version). A finished root carries
# /etc/edgeq-pi-root (the manifest, written last); with it present the script only checks
# binfmt and exits. Builds go to a temporary directory renamed into place at the end, under
# an flock, so a half-built root is never used and two builds never collide.
#
# Inputs (environment): EDGEQ_PI_ROOT_CACHE, EDGEQ_PI_SUITE (bookworm), EDGEQ_PI_PYTHON
# (the suite's python3, e.g. 3.11), EDGEQ_PI_LITERT_VERSION, EDGEQ_PI_NUMPY_VERSION,
# EDGEQ_PI_MIRROR (default: the Debian mirror apt uses), EDGEQ_PIP_PYTHON (the host Python
# whose pip downloads the aarch64 wheels; default: the repo's .venv, else python3).
# Needs root (debootstrap, chroot, binfmt_misc).
set -euo pipefail

SCRIPT_VERSION=1
SUITE=${EDGEQ_PI_SUITE:-bookworm}
LITERT_VERSION=${EDGEQ_PI_LITERT_VERSION:-2.3.0}
NUMPY_VERSION=${EDGEQ_PI_NUMPY_VERSION:-2.4.6}
CACHE=${EDGEQ_PI_ROOT_CACHE:-/var/cache/edgeq}

case "$SUITE" in
    bullseye) default_py=3.9 ;;
    bookworm) default_py=3.11 ;;
    trixie) default_py=3.13 ;;
    *) default_py= ;;
esac
PYVER=${EDGEQ_PI_PYTHON:-$default_py}
KEY="${SUITE}-py${PYVER}-litert${LITERT_VERSION}-numpy${NUMPY_VERSION}-v${SCRIPT_VERSION}"
FINAL="$CACHE/pi-root-$KEY"
MARKER_REL=etc/edgeq-pi-root

log() { printf 'build_root: [%4ss] %s\n' "$SECONDS" "$*" >&2; }
die() {
    printf 'build_root: error: %s\n' "$*" >&2
    exit 1
}

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

MODE=summary
case "${1:-}" in
    "") ;;
    --print-path) MODE=path ;;
    --binfmt-only) MODE=binfmt ;;
    -h | --help)
        usage
        exit 0
        ;;
    *) die "unknown argument: $1 (try --help)" ;;
esac
[ -n "$PYVER" ] || die "no default Python for suite '$SUITE': set EDGEQ_PI_PYTHON (e.g. 3.11)"
[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap, chroot, binfmt_misc)"

# --- host packages and binfmt ------------------------------------------------------------
ensure_host_packages() {
    local missing=() pkg
    for pkg in qemu-user-static binfmt-support debootstrap; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' ||
            missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing host packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends "${missing[@]}" >&2 || {
        apt-get update >&2
        apt-get install -y --no-install-recommends "${missing[@]}" >&2
    }
}

# Prints the interpreter path of the qemu-aarch64 handler; fails if arm64 ELFs can't run.
ensure_binfmt() {
    local bm=/proc/sys/fs/binfmt_misc entry
    if [ ! -e "$bm/register" ]; then
        mount -t binfmt_misc binfmt_misc "$bm" || die "cannot mount binfmt_misc on $bm"
    fi
    entry="$bm/qemu-aarch64"
    if [ ! -e "$entry" ] || ! grep -qx enabled "$entry"; then
        update-binfmts --enable qemu-aarch64 >&2 || true
    fi
    { [ -e "$entry" ] && grep -qx enabled "$entry"; } ||
        die "qemu-aarch64 binfmt handler not registered (see $entry; is qemu-user-static installed?)"
    awk '$1 == "interpreter" { print $2 }' "$entry"
}

binfmt_has_fix_binary() {
    awk '$1 == "flags:" { print $2 }' /proc/sys/fs/binfmt_misc/qemu-aarch64 | grep -q F
}

# --- safe removal of a (possibly half-built) root ----------------------------------------
# Unmounts whatever is mounted below $1 (debootstrap mounts /proc in the target, a crashed
# run may leave more), then removes it without crossing into another filesystem.
unmount_under() {
    local dir=$1 mp
    # mountinfo field 5 is the mount point; deepest first.
    awk -v d="$dir/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
        while read -r mp; do
            umount "$mp" 2>/dev/null || umount -l "$mp" || true
        done
}

remove_root_dir() {
    local dir=$1
    [ -e "$dir" ] || return 0
    case "$dir" in
        "$CACHE"/?*) ;;
        *) die "refusing to remove $dir (outside $CACHE)" ;;
    esac
    unmount_under "$dir"
    if awk -v d="$dir/" 'index($5, d) == 1 { found = 1 } END { exit !found }' \
        /proc/self/mountinfo; then
        die "$dir still has mounts below it; not removing"
    fi
    rm -rf --one-file-system -- "$dir"
}

# --- the Debian mirror -------------------------------------------------------------------
detect_mirror() {
    local m
    m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
        /etc/apt/sources.list.d/*.sources 2>/dev/null |
        grep -E '^[[:space:]]*(URIs:|deb[[:space:]])' |
        grep -oE '[a-z]+://[^][:space:]]+/debian/?([[:space:]]|$)' |
        head -n 1 | tr -d '[:space:]') || true
    printf '%s\n' "${m:-http://deb.debian.org/debian}"
}

pip_python() {
    local repo
    if [ -n "${EDGEQ_PIP_PYTHON:-}" ]; then
        printf '%s\n' "$EDGEQ_PIP_PYTHON"
        return
    fi
    repo=$(cd "$(dirname "$0")/../.." && pwd)
    if [ -x "$repo/.venv/bin/python" ]; then
        printf '%s\n' "$repo/.venv/bin/python"
    else
        printf '%s\n' python3
    fi
}

summary() { # $1: built|cached, $2: seconds
    local size
    size=$(du -sxh "$FINAL" 2>/dev/null | cut -f1)
    if [ "$MODE" = path ]; then
        printf '%s\n' "$FINAL"
    else
        printf 'pi-root: %s (%s, %s, %ss)\n' "$FINAL" "$size" "$1" "$2"
    fi
}

# --- main --------------------------------------------------------------------------------
START=$(date +%s)
ensure_host_packages
INTERP=$(ensure_binfmt)
[ "$MODE" = binfmt ] && exit 0

if [ -f "$FINAL/$MARKER_REL" ]; then
    summary cached "$(($(date +%s) - START))"
    exit 0
fi

# ChrootDirectory (sshd) wants every component of the root path root-owned and not
# group/other-writable: create the cache with 0755 and check its parents.
mkdir -p "$CACHE"
chmod 0755 "$CACHE"
d=$CACHE
while :; do
    d=$(cd "$d" && pwd -P)
    perms=$(stat -c '%u %a' "$d")
    case "$perms" in
        0\ *[2367]? | 0\ *[2367]) die "$d is group/other-writable; sshd's ChrootDirectory refuses it" ;;
        0\ *) ;;
        *) die "$d is not owned by root; sshd's ChrootDirectory refuses it" ;;
    esac
    [ "$d" = / ] && break
    d=$(dirname "$d")
done

exec 9>"$CACHE/.pi-root-$KEY.lock"
if ! flock -n 9; then
    log "another build of $KEY is running; waiting for it"
    flock -w 7200 9 || die "timed out waiting for the build lock"
fi
if [ -f "$FINAL/$MARKER_REL" ]; then # the other build finished it
    summary cached "$(($(date +%s) - START))"
    exit 0
fi

# Leftovers of interrupted builds (we hold the lock, so nobody is using them).
for old in "$CACHE/.pi-root-$KEY.tmp."* "$FINAL"; do
    [ -e "$old" ] || continue
    log "removing unfinished $old"
    remove_root_dir "$old"
done

TMP=$(mktemp -d "$CACHE/.pi-root-$KEY.tmp.XXXXXX")
WHEELS=$(mktemp -d "${TMPDIR:-/tmp}/edgeq-pi-wheels.XXXXXX")
cleanup() {
    rm -rf -- "$WHEELS"
    if [ -n "${TMP:-}" ] && [ -e "$TMP" ]; then
        log "build failed; removing $TMP"
        remove_root_dir "$TMP"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
ROOT=$TMP/root # the temp dir itself is 0700; the root inside gets 0755
mkdir -m 0755 "$ROOT"

MIRROR=${EDGEQ_PI_MIRROR:-$(detect_mirror)}
log "building $KEY from $MIRROR (this takes several minutes)"

# 1. Wheels first: a bad version fails in seconds, not after debootstrap.
PIP_PY=$(pip_python)
platforms=(--platform manylinux2014_aarch64)
for v in 17 24 26 27 28 29 30 31 32 33 34 35 36; do
    platforms+=(--platform "manylinux_2_${v}_aarch64")
done
log "downloading aarch64 cp${PYVER/./} wheels with $PIP_PY"
# PIP_CONSTRAINT= : a host-wide constraints file (pip.conf) must not pin the device's wheels.
PIP_CONSTRAINT='' PIP_REQUIRE_VIRTUALENV=0 "$PIP_PY" -m pip download --quiet \
    --disable-pip-version-check --only-binary=:all: "${platforms[@]}" \
    --python-version "$PYVER" --implementation cp --abi "cp${PYVER/./}" \
    -d "$WHEELS" "ai-edge-litert==$LITERT_VERSION" "numpy==$NUMPY_VERSION" >&2 ||
    die "pip download of ai-edge-litert==$LITERT_VERSION numpy==$NUMPY_VERSION (aarch64, cp${PYVER/./}) failed"

# 2. Debian: first stage on the host, second stage under QEMU in the chroot.
log "debootstrap --foreign $SUITE (arm64, minbase + python3)"
debootstrap --arch=arm64 --foreign --variant=minbase --include=python3 \
    "$SUITE" "$ROOT" "$MIRROR" >&2
if ! binfmt_has_fix_binary; then
    # Without the F flag the kernel resolves the interpreter inside the chroot.
    log "binfmt handler lacks the F flag; copying qemu-aarch64-static into the root"
    install -D -m 0755 /usr/bin/qemu-aarch64-static "$ROOT/usr/bin/qemu-aarch64-static"
    install -D -m 0755 /usr/bin/qemu-aarch64-static "$ROOT$INTERP"
fi
log "debootstrap --second-stage (under QEMU)"
chroot "$ROOT" /debootstrap/debootstrap --second-stage >&2
unmount_under "$ROOT" # second stage mounts /proc, /sys; normally gone already
rm -f "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/cache/apt/*.bin
rm -rf "$ROOT"/var/lib/apt/lists/*

# 3. Wheels unpacked into the root's site directory (no pip inside the root).
[ -x "$ROOT/usr/bin/python$PYVER" ] ||
    die "the root has no python$PYVER (is EDGEQ_PI_PYTHON right for $SUITE?)"
SITE=$(chroot "$ROOT" "python$PYVER" -c 'import site; print(site.getsitepackages()[0])')
log "unpacking wheels into $SITE"
mkdir -p "$ROOT$SITE"
"$PIP_PY" - "$ROOT" "$SITE" "$WHEELS" >&2 <<'PY'
import os
import pathlib
import shutil
import sys
import zipfile

root, site, wheels = pathlib.Path(sys.argv[1]), sys.argv[2], pathlib.Path(sys.argv[3])
dest = root / site.lstrip("/")
for whl in sorted(wheels.glob("*.whl")):
    with zipfile.ZipFile(whl) as zf:
        zf.extractall(dest)
    print("  " + whl.name)
# <name>.data/{purelib,platlib} belong in site; scripts in /usr/local/bin; headers/data: unused.
for data in dest.glob("*.data"):
    for sub in ("purelib", "platlib"):
        if (data / sub).is_dir():
            shutil.copytree(data / sub, dest, dirs_exist_ok=True)
    if (data / "scripts").is_dir():
        shutil.copytree(data / "scripts", root / "usr/local/bin", dirs_exist_ok=True)
    shutil.rmtree(data)
for dirpath, dirnames, filenames in os.walk(dest):
    for d in dirnames:
        os.chmod(os.path.join(dirpath, d), 0o755)
    for f in filenames:
        os.chmod(os.path.join(dirpath, f), 0o644)
PY
# Byte-compile once so every run doesn't pay for it under QEMU; the host's Python writes the
# same .pyc when it is the same minor version, else the root's own python3 does (slower).
if [ "$("$PIP_PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" = "$PYVER" ]; then
    "$PIP_PY" -m compileall -q -s "$ROOT" -p / "$ROOT$SITE" >/dev/null ||
        log "warning: some files did not byte-compile"
else
    chroot "$ROOT" "python$PYVER" -m compileall -q "$SITE" >/dev/null ||
        log "warning: some files did not byte-compile"
fi

# 4. Smoke test: the tools the runner uses, and the imports.
# shellcheck disable=SC2016 # expanded by the root's sh
chroot "$ROOT" /bin/sh -c \
    'for c in bash sh mktemp rm sha256sum cat uname nproc python3; do
         command -v "$c" >/dev/null || { echo "missing: $c" >&2; exit 1; }
     done' >&2
versions=$(chroot "$ROOT" "python$PYVER" -c '
import platform, numpy, ai_edge_litert.interpreter as i
from importlib.metadata import version as v
print("machine=%s python=%s numpy=%s ai-edge-litert=%s" % (
    platform.machine(), platform.python_version(), numpy.__version__, v("ai-edge-litert")))
') || die "smoke test failed: python3 cannot import numpy and ai_edge_litert.interpreter"
log "smoke test: $versions"

# 5. Manifest (= completion marker), then the atomic rename.
{
    echo "key=$KEY"
    echo "suite=$SUITE"
    echo "mirror=$MIRROR"
    echo "site=$SITE"
    echo "$versions" | tr ' ' '\n'
    for w in "$WHEELS"/*.whl; do echo "wheel=$(basename "$w")"; done
    echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
} >"$ROOT/$MARKER_REL"
chmod 0755 "$ROOT"
mv -T "$ROOT" "$FINAL"
rmdir "$TMP"
TMP=
summary built "$(($(date +%s) - START))"
