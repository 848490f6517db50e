"""The language of the assignments' messages: what :mod:`attn_course.checks` says, and the
words of the test cells (the description and hint of each check), in English or in Chinese.

The translations are gettext catalogs compiled into the package (``locale/<language>/
LC_MESSAGES/*.mo``: ``checks.mo`` for this package's own messages, one per assignment for
its notebook's words), read with Python's :mod:`gettext`, so a student's install needs
nothing more. Their sources are ``locales/zh_CN/LC_MESSAGES/{checks,exercises/*}.po`` in the
repository; ``make exercises`` compiles them here (CONTRIBUTING.md).

The language is the environment variable ``ATTN_COURSE_LANGUAGE``, read at every message, so
that a kernel can be switched after it started: the set-up cell of a Chinese notebook calls
``use_language("zh_CN")``, and the grader does the same in the kernel of a Chinese notebook
before its first cell. Unset (or unknown), the messages are in English, as written.

A test cell's words are the English strings of its code (``hint="..."``, f-strings too), so
:func:`text` translates a whole string, a string built from a template
(``f"softmax(A, axis={axis})"``: the catalog's message keeps ``{axis}``), or one made of
several catalog messages one after another (``hint + stability``).
"""

from __future__ import annotations

import gettext
import os
import re
from functools import cache
from pathlib import Path

__all__ = [
    "ENV",
    "LANGUAGES",
    "LOCALE_DIR",
    "N_",
    "english",
    "gettext_",
    "language",
    "text",
    "use_language",
]

ENV = "ATTN_COURSE_LANGUAGE"
LANGUAGES = ("en", "zh_CN")  # English is the source; the others have catalogs
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
_PLACEHOLDER = re.compile(r"(\{[^{}]*\})")


def use_language(language: str) -> None:
    """Make this process (a notebook's kernel) print the assignments' messages in
    ``language`` (one of :data:`LANGUAGES`). In IPython, an assertion a test cell makes
    itself (``assert ..., f"..."``) is shown in that language too (:func:`_shown_in`)."""
    if language not in LANGUAGES:
        raise ValueError(
            f"unknown language {language!r}: the assignments' messages exist in "
            + ", ".join(repr(x) for x in LANGUAGES)
        )
    os.environ[ENV] = language
    try:
        from IPython import get_ipython
    except ImportError:  # not in IPython: nothing shows tracebacks for us
        return
    shell = get_ipython()
    if shell is not None and language != "en":
        shell.set_custom_exc((AssertionError,), _shown_in)  # IPython's public hook


def _shown_in(shell, etype, evalue, tb, tb_offset=None):
    """IPython's handler of a test cell's ``AssertionError``: its message in the current
    language (the checks' messages are already), then IPython's own traceback."""
    said = str(evalue)
    translated = text(said)
    if translated != said:
        evalue.args = (translated,)
    shell.showtraceback((etype, evalue, tb), tb_offset=tb_offset)


def language() -> str:
    """The messages' language now: ``ATTN_COURSE_LANGUAGE`` if it names one, else English."""
    value = os.environ.get(ENV, "en")
    return value if value in LANGUAGES else "en"


@cache
def catalog(language: str, domain: str = "exercises") -> dict[str, str]:
    """msgid -> translation in ``language`` (empty for English, the source language), from
    the package's catalogs of ``domain``: ``checks`` (the package's own messages) or
    ``exercises`` (the notebooks' words, every assignment's catalog merged)."""
    messages: dict[str, str] = {}
    folder = LOCALE_DIR / language / "LC_MESSAGES"
    paths = [folder / "checks.mo"] if domain == "checks" else sorted(folder.glob("exercises/*.mo"))
    for path in [p for p in paths if p.is_file()]:
        with open(path, "rb") as f:
            translations = gettext.GNUTranslations(f)
        # the parsed catalog (gettext has no public way to list it); "" is the header
        messages.update((k, v) for k, v in translations._catalog.items() if k and v)
    return messages


def N_(message: str) -> str:
    """Marks ``message`` as a msgid (for the catalog's extraction) where it is defined; it is
    translated where it is used."""
    return message


def gettext_(message: str, lang: str | None = None) -> str:
    """``message`` (a msgid of this package, a ``str.format`` template) in ``lang``, by
    default the current language."""
    lang = lang or language()
    if lang == "en":
        return message
    return catalog(lang, "checks").get(message, message)


@cache
def _patterns(language: str) -> list[tuple[re.Pattern, list[str], str]]:
    """The catalog's messages as patterns, longest first: a message with placeholders
    (``{axis}``, ``{Q.shape}``) matches any text in their place."""
    out = []
    for msgid, msgstr in sorted(catalog(language).items(), key=lambda kv: -len(kv[0])):
        parts = _PLACEHOLDER.split(msgid)
        holes = parts[1::2]
        regex = "".join(
            re.escape(p) if i % 2 == 0 else f"(?P<p{i // 2}>.+?)" for i, p in enumerate(parts)
        )
        out.append((re.compile(regex, re.DOTALL), holes, msgstr))
    return out


def _fill(match: re.Match, holes: list[str], msgstr: str) -> str:
    values = {hole: match[f"p{i}"] for i, hole in enumerate(holes)}
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(1)), msgstr)


def _translate(s: str, language: str, depth: int = 0) -> str | None:
    found = catalog(language).get(s)
    if found is not None:
        return found
    if not s.strip():
        return s
    patterns = _patterns(language)
    for regex, holes, msgstr in patterns:
        if holes:
            m = regex.fullmatch(s)
            if m:
                return _fill(m, holes, msgstr)
    if depth >= 4:
        return None
    for regex, holes, msgstr in patterns:  # a message followed by others (hint + stability)
        m = regex.match(s)
        if m and m.end() < len(s):
            rest = _translate(s[m.end() :], language, depth + 1)
            if rest is not None:
                return _fill(m, holes, msgstr) + rest
    return None


def english(s: str, lang: str, domain: str = "exercises") -> str:
    """A test cell's words in ``lang`` back to the English of the source (the inverse of
    :func:`text`, for reading graded notebooks); as they are when no translation matches.
    ``domain="checks"``: the package's own messages instead (e.g. the grader's notes)."""
    if lang == "en" or not s:
        return s
    reverse = _reverse(lang, domain)
    if s in reverse:
        return reverse[s]
    for regex, holes, msgid in _reverse_patterns(lang, domain):
        m = regex.fullmatch(s)
        if m:
            return _fill(m, holes, msgid)
    return s


@cache
def _reverse(language: str, domain: str) -> dict[str, str]:
    return {v: k for k, v in catalog(language, domain).items()}


@cache
def _reverse_patterns(language: str, domain: str) -> list[tuple[re.Pattern, list[str], str]]:
    out = []
    for msgid, msgstr in sorted(catalog(language, domain).items(), key=lambda kv: -len(kv[1])):
        parts = _PLACEHOLDER.split(msgstr)
        if len(parts) == 1:
            continue
        regex = "".join(
            re.escape(p) if i % 2 == 0 else f"(?P<p{i // 2}>.+?)" for i, p in enumerate(parts)
        )
        out.append((re.compile(regex, re.DOTALL), parts[1::2], msgid))
    return out


def text(s: str, lang: str | None = None) -> str:
    """A test cell's words (a check's description or hint, an assertion's message) in
    ``lang``, by default the current language; as they are when the catalogs do not know
    them."""
    lang = lang or language()
    if lang == "en" or not isinstance(s, str) or not s:
        return s
    return _translate(s, lang) or s
