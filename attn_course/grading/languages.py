"""An assignment's notebook in another language, and back.

A translated notebook is the English release with, in each locked markdown cell, every
paragraph (block between blank lines) replaced by its translation from the assignment's
catalog (:mod:`attn_course.messages`), and the set-up line :func:`setup_line` appended to
its first code cell, which switches the kernel's messages to that language. Every code cell
but that one, every ``grade_id`` and every point are the English release's. The notebook
records its language in ``metadata.attn_course.language``.

Grading maps a translated notebook back (:func:`to_source`): a locked cell whose source is
exactly the translation of the instructor's cell becomes the instructor's cell, so nbgrader's
checksums see the English notebook; a cell the student edited stays as it is, for the usual
repair and flag rules. The feedback maps the locked markdown to the language again
(:func:`translate_markdown`).

The translations are written by ``nbgrader generate_assignment`` itself, through
:class:`TranslateRelease` (its ``post_convert_hook``, registered by ``configure(c)``), beside
the English notebook: ``<release>/<assignment>/<lang>/<notebook>.ipynb``, under the English
notebook's name, so that a student hands in the same file name in any language and nbgrader
finds it as the assignment's notebook.

No nbgrader import at module level: ``attn-course check`` imports this module too.
"""

from __future__ import annotations

import copy
import logging
import re
from pathlib import Path

from attn_course.grading.cells import checksum
from attn_course.messages import LANGUAGES, catalog

__all__ = [
    "ENGLISH",
    "TranslateRelease",
    "localize",
    "markdown_blocks",
    "needs_translation",
    "notebook_language",
    "setup_line",
    "to_source",
    "translate_markdown",
]

ENGLISH = "en"
_FENCE = re.compile(r"^(`{3,}|~{3,})")
# what a block may hold that is not prose: maths, code spans
_NOT_PROSE = re.compile(r"\$\$.*?\$\$|\$[^$]*\$|`[^`]*`", re.DOTALL)
_SETUP = {  # the line a translated notebook's first code cell ends with
    "zh_CN": 'use_language("zh_CN")  # 测试和检查的消息用中文',
}


def setup_line(language: str) -> str:
    """What a notebook in ``language`` appends to its first code cell."""
    return f"\n\nfrom attn_course.messages import use_language\n\n{_SETUP[language]}"


def notebook_language(nb, unknown: str | None = None) -> str:
    """The language a notebook says it is in (``metadata.attn_course.language``); English if
    it says nothing. An unknown language is an error, or ``unknown`` when that is given (for
    the grader's own words: metadata a student edited must not stop a grade)."""
    said = nb.get("metadata", {}).get("attn_course", {})
    if not isinstance(said, dict):  # edited into something else: it names no language
        if unknown is not None:
            return unknown
        raise ValueError(f"the notebook's metadata attn_course is {said!r}, not a mapping")
    value = said.get("language", ENGLISH)
    if value not in LANGUAGES and unknown is not None:
        return unknown
    if value not in LANGUAGES:
        raise ValueError(
            f"the notebook's metadata names the language {value!r}; the assignments exist in "
            + ", ".join(repr(x) for x in LANGUAGES)
        )
    return value


def markdown_blocks(source: str) -> list[str]:
    """The blocks of a markdown cell, split at blank lines outside code fences."""
    blocks, current, fence = [], [], None
    for line in source.split("\n"):
        m = _FENCE.match(line.strip())
        if m and fence is None:
            fence = m.group(1)[0]
        elif m and line.strip().startswith(fence * 3):
            fence = None
        if not line.strip() and fence is None:
            if current:
                blocks.append("\n".join(current))
            current = []
            continue
        current.append(line)
    if current:
        blocks.append("\n".join(current))
    return blocks


def needs_translation(block: str) -> bool:
    """Whether a block holds words (not only maths or code)."""
    if _FENCE.match(block.strip()):
        return False
    return bool(re.search(r"[A-Za-z]{2,}", _NOT_PROSE.sub("", block)))


def translate_markdown(source: str, language: str) -> str:
    """A markdown cell's source with each block that has a translation replaced by it."""
    if language == ENGLISH:
        return source
    messages = catalog(language)
    return "\n\n".join(messages.get(b, b) for b in markdown_blocks(source))


def _translated_cell(cell_type: str, source: str, language: str, first_code: bool) -> str:
    if cell_type == "markdown":
        return translate_markdown(source, language)
    if first_code:
        return source + setup_line(language)
    return source


def _locked(cell) -> bool:
    return bool(cell.get("metadata", {}).get("nbgrader", {}).get("locked"))


def localize(nb, language: str):
    """The English release ``nb`` in ``language`` (a new notebook)."""
    if language not in LANGUAGES or language == ENGLISH:
        raise ValueError(f"no translation to {language!r}: choose one of {LANGUAGES[1:]}")
    out = copy.deepcopy(nb)
    first_code = next(i for i, c in enumerate(out.cells) if c.cell_type == "code")
    for i, cell in enumerate(out.cells):
        if cell.cell_type == "markdown" or i == first_code:
            cell.source = _translated_cell(cell.cell_type, cell.source, language, i == first_code)
            meta = cell.get("metadata", {}).get("nbgrader")
            if meta and meta.get("checksum"):  # nbgrader's checksum of the cell as released
                meta["checksum"] = checksum(cell)
    out.metadata.setdefault("attn_course", {})["language"] = language
    return out


def to_source(nb, source_cells: dict) -> tuple[str, list[str]]:
    """Map a submitted notebook's translated locked cells back to the instructor's
    (``source_cells``: grade_id -> cell with ``cell_type``, ``source``, as in the gradebook).

    Returns (the notebook's language, the grade_ids mapped back). A notebook that says it is
    English, and has no translated cell, is left alone."""
    said = notebook_language(nb)
    candidates = [said] if said != ENGLISH else list(LANGUAGES[1:])
    order = list(source_cells)
    first_code = next((n for n in order if source_cells[n].cell_type == "code"), None)
    for language in candidates:
        mapped = []
        for cell in nb.cells:
            grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
            src = source_cells.get(grade_id)
            if src is None or not _locked(cell) or cell.cell_type != src.cell_type:
                continue
            translated = _translated_cell(
                src.cell_type, src.source, language, grade_id == first_code
            )
            if translated != src.source and cell.source == translated:
                cell.source = src.source
                mapped.append(grade_id)
        if mapped or said != ENGLISH:
            nb.metadata.setdefault("attn_course", {})["language"] = language
            return language, mapped
    return ENGLISH, []


class TranslateRelease:
    """nbgrader's ``GenerateAssignment.post_convert_hook``: after the student version of an
    assignment is written, its translation into every language with a catalog is written
    beside it, ``<release>/<assignment>/<lang>/<notebook>.ipynb``. A failure is logged as an
    error (nbgrader would only log that a hook failed) and leaves no partial file."""

    def __init__(self, config):
        self.config = config  # nbgrader_config.py's own config, used outside an app

    def _release(self, assignment: str) -> Path:
        from nbgrader.coursedir import CourseDirectory
        from traitlets.config import Application

        app = Application.instance() if Application.initialized() else None
        coursedir = CourseDirectory(config=app.config if app else self.config)
        return Path(coursedir.format_path(coursedir.release_directory, ".", assignment))

    def __call__(self, notebooks=(), **_):
        import nbformat

        log = logging.getLogger("nbgrader")
        for source in notebooks:
            source = Path(source)
            release = self._release(source.parent.name) / source.name
            for language in LANGUAGES[1:]:
                target = release.parent / language / release.name
                try:
                    translated = localize(nbformat.read(release, as_version=4), language)
                    target.parent.mkdir(exist_ok=True)
                    nbformat.write(translated, target)
                except Exception as err:  # noqa: BLE001  (said loudly: nbgrader would not)
                    target.unlink(missing_ok=True)
                    log.error("no %s version of %s: %s", language, release, err)
                else:
                    log.info("wrote %s", target)
