#!/usr/bin/env bash
# Instructions pfstate itself executes (valgrind's Ir, child processes not counted) for apply,
# no-op apply, plan, one-change apply and validate of N forwards, for one or two binaries, in
# throwaway network namespaces. Unlike wall time on a shared VM, the count repeats to within a
# fraction of a percent, so it shows what a change to the code costs.
#
#   sudo scripts/bench-instructions.sh [-n N] PFSTATE [BASELINE_PFSTATE]
#
# Needs root (network namespaces), valgrind and iptables. Never touches the host's own
# firewall: every command runs with `ip netns exec` and `--root` under a temporary directory.
set -euo pipefail

n=10000
if [ "${1:-}" = "-n" ]; then n=$2; shift 2; fi
[ $# -ge 1 ] || { sed -n 2,9p "$0"; exit 1; }
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)"; exit 1; }

work=$(mktemp -d)
namespaces=()
cleanup() {
    for ns in "${namespaces[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

# N forwards on ports 20000.., and the same with one backend moved.
state() {
    echo "version: 1"
    echo "forwards:"
    for ((i = 0; i < n; i++)); do
        local to="10.$(((i >> 16) & 255)).$(((i >> 8) & 255)).$((i & 255 | 1)):8080"
        [ "$1" = changed ] && [ "$i" -eq $((n / 2)) ] && to="10.254.254.254:8081"
        printf '  - name: f%d\n    listen:\n      port: %d\n    to: %s\n' "$i" $((20000 + i)) "$to"
    done
}
state same >"$work/state.yaml"
state changed >"$work/changed.yaml"

# Millions of instructions of one run of pfstate ARGS in namespace NS.
ir() {
    local ns=$1; shift
    ip netns exec "$ns" valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" \
        2>&1 >/dev/null | sed -n 's/.*Collected : \([0-9]*\).*/\1/p' | awk '{printf "%.1f", $1 / 1e6}'
}

measure() {
    local bin=$1 label=$2
    local ns="pfb-ir-$$-$label" root="$work/root-$label"
    ip netns add "$ns"
    namespaces+=("$ns")
    mkdir -p "$root"
    local args=(--root "$root")
    printf '%s apply %s\n' "$label" "$(ir "$ns" "$bin" "${args[@]}" apply "$work/state.yaml")"
    printf '%s no-op %s\n' "$label" "$(ir "$ns" "$bin" "${args[@]}" apply "$work/state.yaml")"
    printf '%s plan %s\n' "$label" "$(ir "$ns" "$bin" "${args[@]}" plan "$work/state.yaml")"
    printf '%s change %s\n' "$label" "$(ir "$ns" "$bin" "${args[@]}" apply "$work/changed.yaml")"
    printf '%s validate %s\n' "$label" "$(ir "$ns" "$bin" validate "$work/state.yaml")"
}

{
    measure "$1" pfstate
    [ $# -ge 2 ] && measure "$2" baseline
} >"$work/figures"

echo "instructions of pfstate itself (millions, valgrind Ir), $n forwards"
awk '
    { v[$1, $2] = $3; if (!($2 in seen)) { seen[$2] = 1; order[++k] = $2 } }
    END {
        printf "%-10s %12s %12s %8s\n", "command", "pfstate", "baseline", "ratio"
        for (i = 1; i <= k; i++) {
            c = order[i]; b = v["baseline", c]
            if (b == "") printf "%-10s %12s\n", c, v["pfstate", c]
            else printf "%-10s %12s %12s %7.2fx\n", c, v["pfstate", c], b, v["pfstate", c] / b
        }
    }' "$work/figures"
