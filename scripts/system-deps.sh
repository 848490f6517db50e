#!/usr/bin/env bash
# System packages the tests drive for real: Chromium (the book as a reader
# sees it) and PostgreSQL (a shared gradebook). Debian packages, installed
# only when missing; the tests start and stop the servers themselves.
set -euo pipefail

need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v bwrap >/dev/null 2>&1 || need+=(bubblewrap)  # boxes the grading kernels
[ ${#need[@]} -eq 0 ] && exit 0

echo "Installing system packages: ${need[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || {
        echo "error: need root (or sudo) to apt-get install ${need[*]}" >&2
        exit 1
    }
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
