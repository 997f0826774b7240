#!/usr/bin/env bash
# Install the Debian 12 packages that building (`build`) or testing (`test`) needs.
# Does nothing when every package is already installed; uses sudo when not root.
set -euo pipefail

build_packages=(python3 python3-venv python3-dev gcc make pkg-config libsystemd-dev gettext)
test_packages=(
  "${build_packages[@]}"
  mosquitto             # real MQTT broker for the forwarder tests
  openssl               # throwaway CA and certificates for the forwarder TLS tests
  debootstrap           # minimal Debian 12 root for the booted-systemd tests
  systemd-container     # systemd-nspawn
  systemd               # systemd-analyze, journalctl and a private journald for the service tests
  clang libclang-rt-14-dev  # libFuzzer and AddressSanitizer for the core
  valgrind
  debhelper dpkg-dev fakeroot lintian apt-utils  # building and checking the .deb
  iproute2 procps psmisc util-linux e2fsprogs
)

case "${1:-}" in
  build) wanted=("${build_packages[@]}") ;;
  test) wanted=("${test_packages[@]}") ;;
  *) echo "usage: $0 build|test" >&2; exit 2 ;;
esac

missing=()
for package in "${wanted[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$package")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

sudo=()
[[ $(id -u) -eq 0 ]] || sudo=(sudo)
echo "installing Debian packages: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q
"${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
