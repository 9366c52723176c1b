#!/usr/bin/env bash
# Installs the Debian packages the end-to-end tests need; idempotent and quiet.
#
# - busybox-static: the statically linked /bin/busybox the test image is made of
#   (capture_tests::image::ensure_test_image imports it with `docker import`);
# - logrotate: real rename+create and copytruncate rotation for the file tailer tests;
# - prometheus: for `promtool check metrics` on /metrics.
#
# `apt-get update` runs only when a package is missing. Safe to run on every CI start.
set -euo pipefail

packages=(busybox-static logrotate prometheus)

missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    sudo=sudo
else
    sudo=
fi

echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

# promtool ships in the prometheus package; make sure it is where the tests look.
if ! command -v promtool >/dev/null 2>&1; then
    echo "install-deps: promtool not found after installing prometheus" >&2
    exit 1
fi
