#!/usr/bin/env bash
# System packages the tests drive for real: Chromium (the book as a reader
# sees it) and PostgreSQL (a shared gradebook). Debian packages, installed
# only when missing; the tests start and stop the servers themselves.
# The CJK font of the Chinese edition's figures is needed by the book build too:
# `make book` runs `system-deps.sh --fonts`, which installs only the font.
set -euo pipefail

CJK_FONT=/usr/share/fonts/truetype/wqy/wqy-microhei.ttc  # attn_course/i18n.py draws with it

need=()
[ -f "$CJK_FONT" ] || need+=(fonts-wqy-microhei)
if [ "${1:-}" != "--fonts" ]; then
command -v chromium >/dev/null 2>&1 || need+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v bwrap >/dev/null 2>&1 || need+=(bubblewrap)  # boxes the grading kernels
fi
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
