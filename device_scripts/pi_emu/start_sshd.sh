#!/usr/bin/env bash
# An sshd on 127.0.0.1 whose logins land in the emulated Raspberry Pi root (arm64 Debian
# under QEMU user mode, built by build_root.sh): `ssh -p PORT root@127.0.0.1 uname -m`
# prints aarch64.
#
#   start_sshd.sh start --port PORT --authorized-keys FILE --state DIR [--root DIR]
#   start_sshd.sh stop --state DIR
#   start_sshd.sh status --state DIR
#   start_sshd.sh mount ROOT      # /proc, /sys, /dev inside ROOT (idempotent)
#   start_sshd.sh umount ROOT     # undo it (idempotent)
#
# start: --port 0 picks a free port. Without --root it uses build_root.sh's cached root,
# building it first if needed (minutes, once). It mounts /proc, /sys and /dev in the root,
# runs the host's /usr/sbin/sshd (daemonized, public-key only, root login, ChrootDirectory =
# the root, internal-sftp so SFTP/scp work without binaries in the root) with a host key kept
# in DIR, and prints port=, pid=, root=, state= and known_hosts= lines on stdout. DIR also
# gets known_hosts (for StrictHostKeyChecking=yes) and sshd.log. Start on a running state
# DIR is a no-op. Sessions get QEMU_CPU=${EDGEQ_PI_QEMU_CPU:-cortex-a72} (a Pi 4's CPU; a Pi 3
# is cortex-a53, a Pi 5 cortex-a76) and /proc/cpuinfo reads like a Pi 4's
# (EDGEQ_PI_CPUINFO=host keeps the host's).
# stop: stops that sshd, ends processes still running inside the root (open sessions) and
# unmounts the root unless another sshd started by this script still uses it.
# Needs root.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
SSHD=/usr/sbin/sshd
REGISTRY=/run/edgeq-pi-emu # <sshd pid> -> root path, one file per running instance

log() { printf 'start_sshd: %s\n' "$*" >&2; }
die() {
    printf 'start_sshd: error: %s\n' "$*" >&2
    exit 1
}
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

# --- mounts ------------------------------------------------------------------------------
mounts_under() { # mount points below $1, deepest first
    awk -v d="$1/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r
}

is_mounted() { awk -v p="$1" '$5 == p { found = 1 } END { exit !found }' /proc/self/mountinfo; }

# A Raspberry Pi 4's /proc/cpuinfo (Cortex-A72) with the host's processor numbers. QEMU 7.2
# user mode passes the host's x86 /proc/cpuinfo through; LiteRT's cpuinfo library then finds
# no ARM processors next to /sys's CPU list and the Interpreter segfaults while being created.
write_cpuinfo() {
    local n
    awk -F': *' '/^processor/ { print $2 }' /proc/cpuinfo | while read -r n; do
        printf 'processor\t: %s\nBogoMIPS\t: 108.00\n' "$n"
        printf 'Features\t: fp asimd evtstrm crc32 cpuid\n'
        printf 'CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\n'
        printf 'CPU part\t: 0xd08\nCPU revision\t: 3\n\n'
    done
    printf 'Hardware\t: BCM2835\nRevision\t: c03114\nSerial\t\t: 0000000000000000\n'
    printf 'Model\t\t: Raspberry Pi 4 Model B Rev 1.4 (QEMU user-mode emulation)\n'
}

mount_root() {
    local root=$1 d
    for d in proc sys dev; do
        [ -d "$root/$d" ] || die "$root does not look like a root file system (no /$d)"
    done
    is_mounted "$root/proc" || mount -t proc proc "$root/proc"
    if [ "${EDGEQ_PI_CPUINFO:-pi}" != host ] && ! is_mounted "$root/proc/cpuinfo"; then
        write_cpuinfo >"$root/etc/edgeq-pi-emu-cpuinfo"
        mount --bind "$root/etc/edgeq-pi-emu-cpuinfo" "$root/proc/cpuinfo"
    fi
    is_mounted "$root/sys" || mount --bind /sys "$root/sys"
    if ! is_mounted "$root/dev"; then
        # /dev with its /dev/pts and /dev/shm; rslave so unmounting never reaches the host's.
        mount --rbind /dev "$root/dev"
        mount --make-rslave "$root/dev"
    fi
}

umount_root() {
    local root=$1 mp
    mounts_under "$root" | while read -r mp; do
        umount "$mp" 2>/dev/null || umount -l "$mp" || log "warning: cannot unmount $mp"
    done
}

# --- processes ---------------------------------------------------------------------------
pid_is_sshd() { # a live process running the host's sshd binary
    [ -n "${1:-}" ] && [ -d "/proc/$1" ] && [ "$(readlink "/proc/$1/exe" 2>/dev/null)" = "$SSHD" ]
}

pids_in_root() { # processes whose root directory is $1 (sessions inside the chroot)
    local p r
    for p in /proc/[0-9]*; do
        r=$(readlink "$p/root" 2>/dev/null) || continue
        [ "$r" = "$1" ] && printf '%s\n' "${p#/proc/}"
    done
    return 0
}

root_in_use_by_others() { # another registered, live sshd serves root $1 (not pid $2)
    local f pid
    for f in "$REGISTRY"/*; do
        [ -f "$f" ] || continue
        pid=${f##*/}
        if ! pid_is_sshd "$pid"; then
            rm -f "$f" # stale
            continue
        fi
        [ "$pid" != "$2" ] && [ "$(cat "$f")" = "$1" ] && return 0
    done
    return 1
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

print_info() { # $1 state dir
    printf 'port=%s\npid=%s\nroot=%s\nstate=%s\nknown_hosts=%s\n' \
        "$(cat "$1/port")" "$(cat "$1/sshd.pid")" "$(cat "$1/root")" "$1" "$1/known_hosts"
}

# --- commands ----------------------------------------------------------------------------
cmd_start() {
    local port="" keys="" state="" root=""
    while [ $# -gt 0 ]; do
        case "$1" in
            --port) port=${2:?}; shift 2 ;;
            --authorized-keys) keys=${2:?}; shift 2 ;;
            --state) state=${2:?}; shift 2 ;;
            --root) root=${2:?}; shift 2 ;;
            *) die "start: unknown argument $1" ;;
        esac
    done
    if [ -z "$port" ] || [ -z "$keys" ] || [ -z "$state" ]; then
        die "start needs --port, --authorized-keys and --state"
    fi
    [ -r "$keys" ] || die "cannot read $keys"
    mkdir -p "$state"
    chmod 0700 "$state"
    state=$(cd "$state" && pwd -P)

    if [ -f "$state/sshd.pid" ] && pid_is_sshd "$(cat "$state/sshd.pid")"; then
        log "already running"
        print_info "$state"
        return 0
    fi

    if [ -z "$root" ]; then
        root=$("$HERE/build_root.sh" --print-path) # builds once; also sets up binfmt
    else
        "$HERE/build_root.sh" --binfmt-only
    fi
    root=$(cd "$root" && pwd -P)
    [ -e "$root/bin/sh" ] || die "$root has no /bin/sh"
    [ -f "$root/etc/edgeq-pi-root" ] || log "warning: $root was not built by build_root.sh"

    if [ ! -x "$SSHD" ] || ! command -v ssh-keygen >/dev/null; then
        log "installing openssh-server"
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
            openssh-server openssh-client >&2
    fi
    local qemu_cpu=${EDGEQ_PI_QEMU_CPU:-cortex-a72}
    [[ "$qemu_cpu" =~ ^[A-Za-z0-9_,=.-]+$ ]] || die "bad EDGEQ_PI_QEMU_CPU: $qemu_cpu"
    [ "$port" = 0 ] && port=$(free_port)
    port_open "$port" && die "127.0.0.1:$port is already in use"

    [ -f "$state/ssh_host_ed25519_key" ] ||
        ssh-keygen -q -t ed25519 -N '' -C edgeq-pi-emu -f "$state/ssh_host_ed25519_key"
    install -m 0600 "$keys" "$state/authorized_keys"
    printf '[127.0.0.1]:%s %s\n' "$port" \
        "$(cut -d' ' -f1,2 "$state/ssh_host_ed25519_key.pub")" >"$state/known_hosts"
    printf '%s\n' "$port" >"$state/port"
    printf '%s\n' "$root" >"$state/root"
    cat >"$state/sshd_config" <<EOF
# Written by device_scripts/pi_emu/start_sshd.sh
ListenAddress 127.0.0.1
Port $port
HostKey $state/ssh_host_ed25519_key
PidFile $state/sshd.pid
AuthorizedKeysFile $state/authorized_keys
PermitRootLogin prohibit-password
AuthenticationMethods publickey
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
# Keys live in the caller's state dir (possibly under /tmp); it is ours, skip the checks.
StrictModes no
ChrootDirectory $root
Subsystem sftp internal-sftp
# The CPU QEMU emulates for every aarch64 program in a session (its default, "max", has
# SVE/SME, and QEMU 7.2's SME makes LiteRT's XNNPACK int8 kernels compute wrong outputs).
SetEnv QEMU_CPU=$qemu_cpu
UseDNS no
PrintMotd no
PrintLastLog no
X11Forwarding no
AllowAgentForwarding no
AllowTcpForwarding no
PermitTunnel no
MaxSessions 64
MaxStartups 64:30:128
EOF
    mkdir -p /run/sshd # sshd's privilege separation directory
    chmod 0755 /run/sshd
    "$SSHD" -t -f "$state/sshd_config" || die "sshd rejects $state/sshd_config"

    mount_root "$root"
    rm -f "$state/sshd.pid"
    : >"$state/sshd.log"
    if ! "$SSHD" -f "$state/sshd_config" -E "$state/sshd.log"; then
        root_in_use_by_others "$root" "" || umount_root "$root"
        die "sshd failed to start; see $state/sshd.log"
    fi
    local i
    for i in $(seq 100); do
        [ -s "$state/sshd.pid" ] && port_open "$port" && break
        if [ "$i" = 100 ]; then
            [ -s "$state/sshd.pid" ] && pid_is_sshd "$(cat "$state/sshd.pid")" &&
                kill -TERM "$(cat "$state/sshd.pid")"
            root_in_use_by_others "$root" "" || umount_root "$root"
            die "sshd did not come up on 127.0.0.1:$port; see $state/sshd.log"
        fi
        sleep 0.1
    done
    mkdir -p "$REGISTRY"
    printf '%s\n' "$root" >"$REGISTRY/$(cat "$state/sshd.pid")"
    print_info "$state"
}

# The one argument of stop and status: --state DIR (printed).
state_arg() {
    local cmd=$1 state=""
    shift
    while [ $# -gt 0 ]; do
        case "$1" in
            --state) state=${2:?}; shift 2 ;;
            *) die "$cmd: unknown argument $1" ;;
        esac
    done
    [ -n "$state" ] || die "$cmd needs --state"
    printf '%s\n' "$state"
}

cmd_stop() {
    local state
    state=$(state_arg stop "$@") || exit 1
    [ -d "$state" ] || { log "no state dir $state; nothing to stop"; return 0; }
    state=$(cd "$state" && pwd -P)
    local pid="" root="" i p
    [ -f "$state/sshd.pid" ] && pid=$(cat "$state/sshd.pid")
    [ -f "$state/root" ] && root=$(cat "$state/root")
    if pid_is_sshd "$pid"; then
        kill -TERM "$pid"
        for i in $(seq 50); do
            pid_is_sshd "$pid" || break
            [ "$i" = 50 ] && kill -KILL "$pid"
            sleep 0.1
        done
    fi
    rm -f "$state/sshd.pid"
    [ -n "$pid" ] && rm -f "$REGISTRY/$pid"
    [ -n "$root" ] || return 0
    if root_in_use_by_others "$root" "$pid"; then
        log "another sshd still serves $root; leaving it mounted"
        return 0
    fi
    # Open sessions keep running inside the chroot after the listener is gone: end them
    # (only processes whose root directory is this root), then unmount.
    for i in 1 2 3; do
        local pids
        pids=$(pids_in_root "$root")
        [ -z "$pids" ] && break
        # shellcheck disable=SC2086 # a list of pids
        kill -TERM $pids 2>/dev/null || true
        sleep 0.5
        if [ "$i" = 3 ]; then
            pids=$(pids_in_root "$root")
            # shellcheck disable=SC2086
            if [ -n "$pids" ]; then kill -KILL $pids 2>/dev/null || true; fi
            sleep 0.2
        fi
    done
    umount_root "$root"
    p=$(mounts_under "$root")
    [ -z "$p" ] || die "still mounted: $p"
}

cmd_status() {
    local state
    state=$(state_arg status "$@") || exit 1
    if [ -f "$state/sshd.pid" ] && pid_is_sshd "$(cat "$state/sshd.pid")"; then
        print_info "$(cd "$state" && pwd -P)"
    else
        log "not running"
        return 1
    fi
}

[ $# -ge 1 ] || {
    usage >&2
    exit 2
}
cmd=$1
shift
case "$cmd" in
    -h | --help) usage; exit 0 ;;
esac
[ "$(id -u)" -eq 0 ] || die "must run as root (chroot, mounts, sshd)"
case "$cmd" in
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    status) cmd_status "$@" ;;
    mount)
        [ $# -eq 1 ] || die "usage: mount ROOT"
        mount_root "$(cd "$1" && pwd -P)"
        ;;
    umount)
        [ $# -eq 1 ] || die "usage: umount ROOT"
        umount_root "$(cd "$1" && pwd -P)"
        ;;
    *) die "unknown command $cmd (try --help)" ;;
esac
