#!/usr/bin/env bash
# A real systemd as PID 1 in private pid/mount/net/uts/ipc/cgroup namespaces, for pfstate's boot
# tests. Follows the systemd-in-namespaces recipe (the "why" of every step is in the comments below):
# the host's / is bound read-only, /etc and /var are overlays whose upper dirs live in the state
# dir (so what pfstate writes survives a "reboot" and never reaches the host), /run, /tmp and /dev
# are private, the netns is fresh on every boot, and only net.* sysctls are writable.
#
#   sandbox.sh boot DIR      boot (first boot prepares DIR); prints the PID of the sandbox's PID 1
#                            once `is-system-running` says running/degraded
#   sandbox.sh exec DIR CMD  run CMD inside (nsenter into all its namespaces, DBUS_* unset)
#   sandbox.sh stop DIR      `systemctl exit`, wait, remove the cgroups (idempotent)
#   sandbox.sh busaddr DIR   the D-Bus address of its system bus, usable from the host
#   sandbox.sh pid DIR       the host PID of its PID 1
#
# Knobs (environment):
#   SANDBOX_BIND="DIR[:DIR...]"   host dirs bound read-only at the same path inside (the cargo
#                                 target dir holding the binaries under test)
#   SANDBOX_VETH="NAME [NAME...]" veth interfaces created inside before systemd starts (peer:
#                                 NAME-p, also inside), so per-interface sysctls exist at boot
#   SANDBOX_OVERLAY="DIR [DIR...]" more top-level dirs made writable like /etc and /var (an
#                                 overlay whose upper dir is DIR/ovl/NAME/upper), e.g. "usr" so
#                                 dpkg can install a package inside; the host's copy is untouched
#   SANDBOX_BOOT_TIMEOUT=60  SANDBOX_STOP_TIMEOUT=30   seconds
#
# Packages (Debian 12): systemd dbus util-linux bsdutils mount coreutils procps iproute2 iptables
# (unshare/nsenter/setpriv/pivot_root from util-linux, `script` from bsdutils, `ip` for veths,
# iptables for the tests' assertions). Not needed: udev, systemd-sysv, kmod.
#
# Safety: every mount is made in the sandbox's own mount namespace; the only host-side changes
# are DIR itself and one cgroup per DIR (removed by stop). Processes are killed by PID only,
# after checking they are the ones this script started (PID + start time).
set -euo pipefail

SELF=$(readlink -f "${BASH_SOURCE[0]}")
BOOT_TIMEOUT=${SANDBOX_BOOT_TIMEOUT:-60}
STOP_TIMEOUT=${SANDBOX_STOP_TIMEOUT:-30}

die() { echo "sandbox: $*" >&2; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

# Per-DIR cgroup name: parallel sandboxes never share a cgroup.
cg_name() { echo "pfstate-sbx-$(printf %s "$1" | md5sum | cut -c1-12)"; }

# The host cgroup directories of DIR (pure v2: one; hybrid: unified + name=systemd).
cg_dirs() {
    local name; name=$(cg_name "$1")
    if [[ -e /sys/fs/cgroup/cgroup.controllers ]]; then
        echo "/sys/fs/cgroup/$name"
    else
        [[ -d /sys/fs/cgroup/unified ]] && echo "/sys/fs/cgroup/unified/$name"
        [[ -d /sys/fs/cgroup/systemd ]] && echo "/sys/fs/cgroup/systemd/$name"
    fi
    return 0
}

# Start time (clock ticks since boot) of a live process, empty when it is gone or a zombie (a
# zombie lingers until its parent reaps it; the launcher's parent is the host's PID 1, which may
# be slow to do so). PID + start time identify "the process we started" despite PID reuse.
starttime() { awk '$3 != "Z" { print $22 }' "/proc/$1/stat" 2>/dev/null || true; }

# The live PID 1 of DIR, or nothing: the recorded PID must still be the process we started.
live_pid() {
    local dir=$1 pid start
    [[ -s $dir/pid && -s $dir/pid.start ]] || return 0
    pid=$(<"$dir/pid"); start=$(<"$dir/pid.start")
    [[ -n $pid && "$(starttime "$pid")" == "$start" ]] && echo "$pid"
    return 0
}

live_launcher() {
    local dir=$1 pid start
    [[ -s $dir/launcher.pid && -s $dir/launcher.start ]] || return 0
    pid=$(<"$dir/launcher.pid"); start=$(<"$dir/launcher.start")
    [[ -n $pid && "$(starttime "$pid")" == "$start" ]] && echo "$pid"
    return 0
}

wait_gone() { # PID START TIMEOUT-SECONDS (may be fractional)
    local pid=$1 start=$2 steps i=0
    steps=$(awk -v t="$3" 'BEGIN { printf "%d", t * 50 }')
    while [[ "$(starttime "$pid")" == "$start" ]]; do
        (( i++ < steps )) || return 1
        sleep 0.02
    done
}

remove_cgroups() {
    local dir=$1 cg i
    for cg in $(cg_dirs "$dir"); do
        [[ -d $cg ]] || continue
        for i in $(seq 50); do
            find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true
            [[ -d $cg ]] || break
            sleep 0.05
        done
        [[ -d $cg ]] && echo "sandbox: could not remove cgroup $cg" >&2
    done
    return 0
}

cmd_stop() {
    local dir=$1 pid start t0 lpid
    t0=$(now)
    pid=$(live_pid "$dir")
    if [[ -n $pid ]]; then
        start=$(<"$dir/pid.start")
        env -u DBUS_SYSTEM_BUS_ADDRESS -u DBUS_SESSION_BUS_ADDRESS \
            timeout 10 nsenter -t "$pid" -a -- systemctl exit >/dev/null 2>&1 || true
        if ! wait_gone "$pid" "$start" "$STOP_TIMEOUT"; then
            echo "sandbox: PID 1 ($pid) did not exit in ${STOP_TIMEOUT}s, killing it" >&2
            kill -KILL "$pid" 2>/dev/null || true
            wait_gone "$pid" "$start" 5 || true
        fi
    fi
    # The launcher (script + unshare) exits with PID 1; kill it by PID if a crash left it behind
    # (the console log is written unbuffered, -f, so nothing is lost).
    lpid=$(live_launcher "$dir")
    if [[ -n $lpid ]]; then
        local lstart; lstart=$(<"$dir/launcher.start")
        if ! wait_gone "$lpid" "$lstart" 1; then
            kill -KILL "$lpid" 2>/dev/null || true
            wait_gone "$lpid" "$lstart" 2 || echo "sandbox: launcher $lpid did not exit" >&2
        fi
    fi
    remove_cgroups "$dir"
    rm -f "$dir/pid" "$dir/pid.start" "$dir/launcher.pid" "$dir/launcher.start"
    [[ -n $pid ]] && echo "sandbox: stopped $dir (PID $pid) in $(elapsed "$t0") s" >&2
    return 0
}

# Stage 1: PID 1 of the new pid namespace, still seeing the host's /proc and cgroups.
stage1() {
    local dir=$1 pid rest cg
    read -r pid rest </proc/self/stat
    for cg in $(cg_dirs "$dir"); do
        mkdir -p "$cg"
        echo 0 >"$cg/cgroup.procs"
    done
    awk '{ print $22 }' "/proc/$pid/stat" >"$dir/pid.start.tmp"
    mv "$dir/pid.start.tmp" "$dir/pid.start"
    echo "$pid" >"$dir/pid.tmp"
    mv "$dir/pid.tmp" "$dir/pid"
    exec unshare --cgroup -- "$SELF" stage2 "$dir"
}

# First boot of a state dir, inside the fresh /etc overlay: hide the host's enabled services.
prepare_etc() {
    local etc=$1 f
    for f in "$etc"/systemd/system/*.wants "$etc"/systemd/system/*.requires; do
        [[ -e $f ]] && rm -rf "$f"
    done
    for f in "$etc"/rc?.d/*; do
        [[ -e $f || -L $f ]] && rm -f "$f"
    done
    ln -sfn /dev/null "$etc/systemd/system/getty.target"
    ln -sfn /dev/null "$etc/systemd/system/console-getty.service"
    systemd-id128 new >"$etc/machine-id"
    echo pfstate-sandbox >"$etc/hostname"
    : >"$etc/fstab"
    mkdir -p "$etc/systemd/journald.conf.d"
    printf '[Journal]\nStorage=volatile\nForwardToConsole=yes\n' \
        >"$etc/systemd/journald.conf.d/90-pfstate-sandbox.conf"
}

# Stage 2: in the new mount/net/cgroup namespaces; builds the root and becomes systemd.
stage2() {
    local dir=$1 R=$1/root d n console
    console=$(tty)
    mount --make-rprivate /
    mount --bind / "$R"
    mount -o remount,bind,ro "$R"
    mount -t overlay overlay \
        -o "lowerdir=/etc,upperdir=$dir/ovl/etc/upper,workdir=$dir/ovl/etc/work,volatile" "$R/etc"
    mount -t overlay overlay \
        -o "lowerdir=/var,upperdir=$dir/ovl/var/upper,workdir=$dir/ovl/var/work,volatile" "$R/var"
    for d in ${SANDBOX_OVERLAY:-}; do
        mount -t overlay overlay \
            -o "lowerdir=/$d,upperdir=$dir/ovl/$d/upper,workdir=$dir/ovl/$d/work,volatile" "$R/$d"
    done
    if [[ ! -e $dir/prepared ]]; then
        prepare_etc "$R/etc"
        touch "$dir/prepared"
    fi
    mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs "$R/run"
    mkdir -p "$R/run/lock" "$R/run/pfstate-test/share"
    mount --bind "$dir/share" "$R/run/pfstate-test/share"
    mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$R/tmp"
    mount -t tmpfs -o mode=0755,nosuid tmpfs "$R/dev"
    mknod -m 666 "$R/dev/null" c 1 3
    mknod -m 666 "$R/dev/zero" c 1 5
    mknod -m 666 "$R/dev/full" c 1 7
    mknod -m 666 "$R/dev/random" c 1 8
    mknod -m 666 "$R/dev/urandom" c 1 9
    mknod -m 666 "$R/dev/tty" c 5 0
    mkdir -p "$R/dev/pts" "$R/dev/shm"
    mount -t devpts -o newinstance,ptmxmode=0666,mode=620,gid=5 devpts "$R/dev/pts"
    ln -s pts/ptmx "$R/dev/ptmx"
    touch "$R/dev/console"
    mount --bind "$console" "$R/dev/console"
    mount -t proc proc "$R/proc"
    mount --bind "$R/proc/sys" "$R/proc/sys"
    mount -o remount,bind,ro "$R/proc/sys"
    mount --bind "$R/proc/sys/net" "$R/proc/sys/net"
    mount -o remount,bind,rw "$R/proc/sys/net"
    mount -t sysfs -o ro sysfs "$R/sys"
    mount -t cgroup2 cgroup2 "$R/sys/fs/cgroup"
    # Host dirs the tests need inside (binaries under test), read-only at the same path.
    # `/` was bound non-recursively, so a dir on another filesystem would otherwise be empty.
    if [[ -n ${SANDBOX_BIND:-} ]]; then
        IFS=: read -r -a binds <<<"$SANDBOX_BIND"
        for d in "${binds[@]}"; do
            [[ -n $d && -d $d ]] || continue
            mkdir -p "$R$d" 2>/dev/null || true
            mount --bind "$d" "$R$d"
            mount -o remount,bind,ro "$R$d"
        done
    fi
    # Interfaces that must exist when systemd-sysctl runs (no udev inside to re-apply later).
    for n in ${SANDBOX_VETH:-}; do
        ip link add "$n" type veth peer name "$n-p"
        ip link set "$n" up
        ip link set "$n-p" up
    done
    cd "$R"
    pivot_root . .
    umount -l .
    cd /
    # container= is mandatory: without it systemd's shutdown path acts on the host's /.
    exec env -i container=pfstate-test TERM=dumb PATH=/usr/sbin:/usr/bin:/sbin:/bin \
        setpriv --bounding-set -sys_module,-sys_time,-wake_alarm -- \
        /lib/systemd/systemd --unit=multi-user.target --show-status=no
}

fail_boot() {
    local dir=$1; shift
    {
        echo "sandbox: boot of $dir failed: $*"
        echo "--- launcher.log"; tail -n 20 "$dir/launcher.log" 2>/dev/null || true
        echo "--- console.log (tail)"; tail -n 40 "$dir/console.log" 2>/dev/null || true
    } >&2
    cmd_stop "$dir"
    exit 1
}

cmd_boot() {
    local dir=$1 t0 pid deadline state lpid launch
    t0=$(now)
    [[ $(id -u) == 0 ]] || die "must run as root"
    # Recover from a crashed run: halt a live sandbox, kill a stale launcher, remove cgroups.
    cmd_stop "$dir"
    # An interrupted boot must not leave a sandbox behind.
    trap 'cmd_stop "$dir"; exit 130' INT TERM HUP
    mkdir -p "$dir/root" "$dir/share"
    for d in etc var ${SANDBOX_OVERLAY:-}; do
        [[ $d =~ ^[a-z]+$ && -d /$d ]] || fail_boot "$dir" "cannot overlay /$d"
        mkdir -p "$dir/ovl/$d/upper"
        rm -rf "$dir/ovl/$d/work"
        mkdir "$dir/ovl/$d/work"
    done
    : >"$dir/console.log"
    printf -v launch 'exec unshare --pid --fork --kill-child --mount --propagation private --net --uts --ipc -- %q stage1 %q' \
        "$SELF" "$dir"
    # Detached from the caller's stdout (pitfall 11), with a pty as /dev/console.
    setsid script -qfec "$launch" "$dir/console.log" </dev/null >/dev/null 2>"$dir/launcher.log" &
    lpid=$!
    echo "$lpid" >"$dir/launcher.pid"
    starttime "$lpid" >"$dir/launcher.start"
    deadline=$(( $(date +%s) + BOOT_TIMEOUT ))
    pid=""
    while :; do
        pid=$(live_pid "$dir")
        # comm must be systemd before looking at /proc/PID/root/run (pitfall: before
        # pivot_root that path is the host's /run).
        if [[ -n $pid && "$(cat "/proc/$pid/comm" 2>/dev/null)" == systemd \
            && -S /proc/$pid/root/run/systemd/private ]]; then
            break
        fi
        [[ -n $(live_launcher "$dir") || -n $pid ]] || fail_boot "$dir" "launcher exited"
        (( $(date +%s) < deadline )) || fail_boot "$dir" "no systemd after ${BOOT_TIMEOUT}s"
        sleep 0.02
    done
    state=$(env -u DBUS_SYSTEM_BUS_ADDRESS -u DBUS_SESSION_BUS_ADDRESS \
        timeout $(( deadline - $(date +%s) + 1 )) \
        nsenter -t "$pid" -a -- systemctl is-system-running --wait 2>/dev/null || true)
    case $state in
        running|degraded) ;;
        *) fail_boot "$dir" "is-system-running: '${state}'" ;;
    esac
    trap - INT TERM HUP
    echo "sandbox: booted $dir as PID $pid ($state) in $(elapsed "$t0") s" >&2
    echo "$pid"
}

cmd_exec() {
    local dir=$1 pid; shift
    pid=$(live_pid "$dir")
    [[ -n $pid ]] || die "$dir is not running"
    # The host-side bus address means nothing inside (pitfall 5).
    exec env -u DBUS_SYSTEM_BUS_ADDRESS -u DBUS_SESSION_BUS_ADDRESS nsenter -t "$pid" -a -- "$@"
}

[[ $# -ge 2 ]] || die "usage: sandbox.sh boot|exec|stop|busaddr|pid DIR [CMD...]"
cmd=$1 dir=$2
shift 2
case $cmd in
    boot|stop|busaddr|pid|exec) dir=$(mkdir -p "$dir" && cd "$dir" && pwd -P) ;;
esac
case $cmd in
    boot) cmd_boot "$dir" ;;
    stop) cmd_stop "$dir" ;;
    exec) cmd_exec "$dir" "$@" ;;
    pid)
        pid=$(live_pid "$dir"); [[ -n $pid ]] || die "$dir is not running"; echo "$pid" ;;
    busaddr)
        pid=$(live_pid "$dir"); [[ -n $pid ]] || die "$dir is not running"
        echo "unix:path=/proc/$pid/root/run/dbus/system_bus_socket" ;;
    stage1) stage1 "$dir" ;;
    stage2) stage2 "$dir" ;;
    *) die "unknown command $cmd" ;;
esac
