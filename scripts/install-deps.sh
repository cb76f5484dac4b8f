#!/usr/bin/env bash
# Install the Debian packages pfstate's commands and tests use (run as root).
# iptables/iproute2/conntrack: the engine; systemd/dbus/util-linux/bsdutils/mount/procps: the
# systemd-in-namespaces boot tests; ipset/nfacct: loading the Kubernetes fixtures; time: the
# benchmark's peak-memory figure; nftables: the nftables blind-spot warning; dpkg-dev
# (dpkg-shlibdeps), man-db, groff-base, bash-completion: building the Debian package and
# checking that its man page renders and its completion loads (tests/package.rs); firewalld and
# docker.io: the watcher's test against the real managers, run only inside the systemd sandbox. Plus
# ansible-core (PyPI) for the Ansible collection's test, and cargo-deb (crates.io).
set -euo pipefail
packages=(iptables iproute2 conntrack systemd dbus util-linux bsdutils mount procps coreutils
          ipset nfacct time nftables dpkg-dev man-db groff-base bash-completion firewalld docker.io)
# Services these packages would enable or start on this machine; they run only in sandboxes.
foreign_units=(firewalld.service docker.service docker.socket containerd.service)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    # No maintainer script may start a firewall or dockerd on this machine: policy-rc.d
    # answers 101 ("action forbidden") to invoke-rc.d and deb-systemd-invoke while installing.
    own_policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        own_policy=1
    fi
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    [ -n "$own_policy" ] && rm -f /usr/sbin/policy-rc.d
    # Installing enabled them in this machine's /etc: take that back (offline, like --root).
    systemctl --root=/ disable "${foreign_units[@]}" >/dev/null 2>&1 || true
fi
# ansible-core from PyPI: the Ansible collection's fleet test (tests/ansible_fleet.rs) runs
# ansible-playbook as `python3 -m ansible`.
# Asked from / and for a module only ansible-core has: from the checkout, this repository's
# ansible/ folder would pass for the package (a namespace package) and hide that it is missing.
if ! (cd / && python3 -c 'import ansible.release') 2>/dev/null; then
    python3 -m pip --version >/dev/null 2>&1 || apt-get install -y -qq --no-install-recommends python3-pip >/dev/null
    python3 -m pip install --quiet --disable-pip-version-check 'ansible-core>=2.15' \
        || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages 'ansible-core>=2.15'
fi
echo "dependencies present: ${packages[*]} ansible-core"
# cargo-deb builds the .deb (scripts/build-deb.sh); Debian 12 does not package it. A pinned
# version, built once per machine (2-3 min on 2 cores), then found in ~/.cargo/bin.
CARGO_DEB_VERSION=3.8.0
if ! cargo deb --version 2>/dev/null | grep -qx "cargo-deb $CARGO_DEB_VERSION"; then
    cargo install --quiet --locked cargo-deb --version "$CARGO_DEB_VERSION"
fi
echo "cargo-deb $CARGO_DEB_VERSION present"
