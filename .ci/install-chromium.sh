#!/bin/sh
# Install Debian's headless-capable chromium for the HTML report test (tests/test_report.py).
# CI runs as root on Debian; elsewhere this needs sudo. Does nothing when chromium is present.
set -eu
for exe in chromium chromium-browser google-chrome; do
    if command -v "$exe" >/dev/null 2>&1; then
        echo "found $exe: $(command -v "$exe")"
        exit 0
    fi
done
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
# fonts-dejavu-core: without a font the screenshot renders text as empty boxes.
$SUDO apt-get install -y --no-install-recommends chromium fonts-dejavu-core
command -v chromium
