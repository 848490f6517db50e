#!/usr/bin/env bash
# Writes the book's Sphinx configuration, generated from _config.yml, to
# _build/sphinx/conf.py, for the sphinx-build runs that jupyter-book's CLI cannot
# do: it passes no -D overrides to Sphinx (jupyter-book #1791), so the gettext
# extraction and the Chinese edition run sphinx-build on this conf.
#
# Generated on every build and never committed, so it cannot drift from
# _config.yml. `jupyter-book config sphinx` writes conf.py into the book root; it
# is moved out at once. The lines appended below restore what the generated
# file misses or locates relative to the root (Sphinx reads conf-relative paths
# from _build/sphinx/).
set -euo pipefail
cd "$(dirname "$0")/.."
out=_build/sphinx
mkdir -p "$out"
jupyter-book config sphinx . >/dev/null
mv conf.py "$out/conf.py.new"
cat >> "$out/conf.py.new" <<'CONF'

# --- appended by scripts/sphinx-conf.sh ------------------------------------
import os as _os
import sys as _sys

_root = _os.path.abspath(_os.path.join(_os.path.dirname(__file__), "..", ".."))
# `jupyter-book config sphinx` drops sphinx.local_extensions' paths.
_sys.path.insert(0, _os.path.join(_root, "_ext"))
# Paths Sphinx reads relative to the conf's folder.
html_static_path = [_os.path.join(_root, p) for p in html_static_path]
html_favicon = _os.path.join(_root, html_favicon)
bibtex_bibfiles = [_os.path.join(_root, p) for p in bibtex_bibfiles]
# The execution cache `jupyter-book build` fills: the translated edition reads it.
nb_execution_cache_path = _os.path.join(_root, "_build", ".jupyter_cache")
# One catalog per page (locales/<lang>/LC_MESSAGES/book/<page>.po), relative to the root.
locale_dirs = ["locales"]
gettext_compact = False
# No source line numbers in the catalogs: a reflowed paragraph above would touch
# every message below it.
gettext_location = False
CONF
mv "$out/conf.py.new" "$out/conf.py"
