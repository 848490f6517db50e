"""The assignment downloads of a translated edition, loaded by _config.yml
(``sphinx.local_extensions``).

Each chapter ends with ``{download}`` of its assignment notebook,
``exercises/<assignment>/<assignment>.ipynb``. In an edition in another language (``-D
language=zh_CN``), the link leads to that language's notebook instead,
``exercises/<assignment>/<language>/<assignment>.ipynb`` (``make exercises`` writes it, under
the same file name), when it exists. The English chapters stay the single source: the target is
changed in the doctree, after the translation and before Sphinx collects the downloads.
"""

from __future__ import annotations

import re
from pathlib import Path

from sphinx import addnodes

_NOTEBOOK = re.compile(r"^(?P<folder>(?:.*/)?exercises/(?P<name>[^/]+))/(?P=name)\.ipynb$")


def _translated_downloads(app, doctree):
    language = app.config.language
    if not language or language == "en":
        return
    docdir = Path(app.env.doc2path(app.env.docname)).parent
    for node in doctree.findall(addnodes.download_reference):
        m = _NOTEBOOK.match(node.get("reftarget", ""))
        if m is None:
            continue
        target = f"{m['folder']}/{language}/{m['name']}.ipynb"
        base = Path(app.srcdir) if target.startswith("/") else docdir
        if (base / target.lstrip("/")).is_file():
            node["reftarget"] = target


def setup(app):
    # before Sphinx's DownloadFileCollector (doctree-read, priority 500) records the file
    app.connect("doctree-read", _translated_downloads, priority=400)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
