#!/usr/bin/env bash
# Install the Debian packages pfstate's commands and tests use (run as root).
# iptables/iproute2/conntrack: the engine; systemd/dbus/util-linux/bsdutils/mount/procps: the
# systemd-in-namespaces boot tests; ipset/nfacct: loading the Kubernetes fixtures; time: the
# benchmark's peak-memory figure; nftables: the nftables blind-spot warning; dpkg-dev
# (dpkg-shlibdeps), man-db, groff-base, bash-completion: building the Debian package and
# checking that its man page renders and its completion loads (tests/package.rs). Plus
# ansible-core (PyPI) for the Ansible collection's test, and cargo-deb (crates.io).
set -euo pipefail
packages=(iptables iproute2 conntrack systemd dbus util-linux bsdutils mount procps coreutils
          ipset nfacct time nftables dpkg-dev man-db groff-base bash-completion)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# ansible-core from PyPI: the Ansible collection's fleet test (tests/ansible_fleet.rs) runs
# ansible-playbook as `python3 -m ansible`.
if ! python3 -c 'import ansible' 2>/dev/null; then
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
