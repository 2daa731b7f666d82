#!/usr/bin/env bash
# Installs what onestack needs, idempotently and quickly when nothing is missing.
#   setup.sh npm   node modules only
#   setup.sh run   + Debian packages the running cloud and its users need
#   setup.sh test  + Debian packages the test suite needs (real OpenStack clients, slapd)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mode=${1:-npm}
say() { printf '[setup] %s\n' "$*" >&2; }

major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$major" -lt 20 ]; then
  say "Node.js 20 or newer is required (found: $(node --version 2>/dev/null || echo none))"; exit 1
fi

# npm: reinstall when the lockfile changed since the last install.
stamp="$here/node_modules/.onestack-lock-stamp"
if [ ! -f "$stamp" ] || ! cmp -s "$here/package-lock.json" "$stamp"; then
  say "installing npm packages (npm ci)"
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error >&2)
  cp "$here/package-lock.json" "$stamp"
fi

# images/build.sh (the guest image) needs cpio e2fsprogs dosfstools mtools fdisk and qemu-utils.
# neutron's agents: dnsmasq for DHCP (dnsmasq-utils: dhcp_release for leases of deleted ports), radvd for IPv6 router advertisements, nftables for security groups and NAT, iputils-arping for floating IPs' gratuitous ARP, conntrack to cut flows a removed rule forbids.
# nova-compute: QEMU for the guests, genisoimage for config drives.
RUN_PKGS=(python3-openstackclient python3-openstacksdk qemu-utils cpio e2fsprogs dosfstools mtools fdisk dnsmasq-base nftables iputils-arping conntrack qemu-system-x86 genisoimage radvd dnsmasq-utils)
# e2e/guest-image.test.ts boots it: QEMU, dnsmasq, namespaces, config drives, ssh. e2e/placement-cli.test.ts: osc-placement.
TEST_PKGS=(python3-openstackclient python3-openstacksdk python3-swiftclient slapd ldap-utils curl qemu-utils cpio e2fsprogs dosfstools mtools fdisk
  qemu-system-x86 dnsmasq-base iproute2 genisoimage openssh-client nftables busybox-static iputils-arping conntrack python3-osc-placement radvd dnsmasq-utils)
case $mode in
  npm) exit 0 ;;
  run) pkgs=("${RUN_PKGS[@]}") ;;
  test) pkgs=("${TEST_PKGS[@]}") ;;
  *) say "unknown mode $mode"; exit 2 ;;
esac

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { say "please install as root: apt-get install ${missing[*]}"; exit 1; }
  SUDO=sudo
fi
say "installing Debian packages: ${missing[*]}"
# Keep packaged daemons (slapd on :389 …) from starting: tests run their own on loopback.
prc=
if [ ! -e /usr/sbin/policy-rc.d ]; then
  prc=/usr/sbin/policy-rc.d
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee $prc >/dev/null && $SUDO chmod +x $prc
fi
trap '[ -n "$prc" ] && $SUDO rm -f "$prc"' EXIT
apt_install() { $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=300 "${missing[@]}" >&2; }
apt_install || { $SUDO apt-get update -q >&2 && apt_install; }
