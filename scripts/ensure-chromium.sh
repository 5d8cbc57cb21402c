#!/usr/bin/env bash
# Finds the Chromium the browser tests and benchmarks use (CHROMIUM_PATH, else /usr/bin/chromium)
# and, when there is none, installs Debian's package (as root). Playwright never downloads a
# browser here. Prints the path it found.
set -euo pipefail
path="${CHROMIUM_PATH:-/usr/bin/chromium}"
if [ -x "$path" ]; then echo "$path"; exit 0; fi
if [ -n "${CHROMIUM_PATH:-}" ]; then
  echo "CHROMIUM_PATH=$CHROMIUM_PATH is not an executable" >&2; exit 1
fi
if [ "$(id -u)" != "0" ]; then
  echo "Chromium is missing: install Debian's package (sudo apt-get install chromium) or set CHROMIUM_PATH" >&2; exit 1
fi
echo "installing Debian's chromium package…" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq chromium >&2
[ -x /usr/bin/chromium ] || { echo "chromium did not install" >&2; exit 1; }
echo /usr/bin/chromium
