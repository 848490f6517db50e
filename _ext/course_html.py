"""Small fixes to the book's HTML, loaded by _config.yml (``sphinx.local_extensions``).

Sphinx 7.4 registers an inline ``<script>`` that an extension adds after the
builder started (sphinx-thebe does, in ``env-before-read-docs``) twice: once
with ``filename=None`` and once with ``filename=''``, which its duplicate check
treats as different. sphinx-thebe's inline script declares ``const
THEBE_JS_URL``, so the second copy is a JavaScript error on every page
("Identifier 'THEBE_JS_URL' has already been declared"). This drops exact
duplicates from each page's scripts, keeping the first.
"""


def _drop_duplicate_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not isinstance(scripts, list):
        return
    seen = set()
    unique = []
    for js in scripts:
        key = (
            getattr(js, "filename", None) or "",
            repr(sorted(getattr(js, "attributes", {}).items())),
        )
        if key not in seen:
            seen.add(key)
            unique.append(js)
    scripts[:] = unique  # in place: Sphinx restores its own list after each page


def setup(app):
    # Late, after every other extension has added its page scripts.
    app.connect("html-page-context", _drop_duplicate_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
