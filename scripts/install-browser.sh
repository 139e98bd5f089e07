#!/usr/bin/env bash
# Install Debian's Chromium for the dashboard's browser tests (Playwright drives it through
# executable_path; `playwright install` and its downloaded browsers are never used).
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "install Chromium at /usr/bin/chromium (Debian/Ubuntu: apt-get install chromium)" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium
