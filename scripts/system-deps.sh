#!/usr/bin/env bash
# System packages the tests drive for real: Chromium (the book as a reader
# sees it) and PostgreSQL (a shared gradebook). Debian packages, installed
# only when missing; the tests start and stop the servers themselves.
# `--hub` (make hub-proxy): npm, to install the class hub's proxy (configurable-http-proxy), and
# the system's Python 3.11, which runs the hub users' servers (scripts/hub/class_hub.py).
# The CJK font of the Chinese edition's figures is needed by the book build too:
# `make book` runs `system-deps.sh --fonts`, which installs only the font.
set -euo pipefail

CJK_FONT=/usr/share/fonts/truetype/wqy/wqy-microhei.ttc  # attn_course/i18n.py draws with it

# `--grading` (make grader): only what grading student code needs, bubblewrap (the box) and
# util-linux (prlimit, setpriv); where it cannot install them, it says in one line what to run
# and leaves the refusal to the grader (which will not run student code unboxed unasked).
mode="${1:-}"
need=()
grading_needs() {
    command -v bwrap >/dev/null 2>&1 || need+=(bubblewrap)  # boxes the grading kernels
    { command -v prlimit && command -v setpriv; } >/dev/null 2>&1 || need+=(util-linux)
}
hub_needs() {
    command -v npm >/dev/null 2>&1 || need+=(npm)
    [ -x /usr/bin/python3.11 ] || need+=(python3.11)
}
case "$mode" in
    --fonts) [ -f "$CJK_FONT" ] || need+=(fonts-wqy-microhei) ;;
    --grading) grading_needs ;;
    --hub) hub_needs ;;
    *)
        [ -f "$CJK_FONT" ] || need+=(fonts-wqy-microhei)
        command -v chromium >/dev/null 2>&1 || need+=(chromium)
        ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
        grading_needs
        hub_needs
        ;;
esac
[ ${#need[@]} -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
        if [ "$mode" = "--grading" ]; then
            echo "To grade boxed, install as root: apt-get install ${need[*]}" >&2
            exit 0
        fi
        echo "error: need root (or sudo) to apt-get install ${need[*]}" >&2
        exit 1
    fi
    SUDO="sudo"
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "To grade boxed, install with your system's package manager: ${need[*]}" >&2
    [ "$mode" = "--grading" ] && exit 0
    exit 1
fi
echo "Installing system packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
