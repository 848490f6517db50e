r"""The book in several languages from one source, loaded by _config.yml (``local_extensions``).

Sphinx translates the prose (gettext catalogs in ``locales/``); this adds what Sphinx
cannot know about:

- **Figures.** ``{glue:figure}`` shows the figure the chapter glued; in a translated
  edition it redraws the pickled Figure that ``attn_course.i18n.glue_figure`` glued next
  to it, with its words from the page's catalog (a missing glyph is a build warning, so
  ``-W`` fails on tofu). In a gettext build the words are added to the page's template.
- **A language switch** in every page's header, linking to the same page in the other
  editions (relative links: the book also works from ``file://``).
- **Glue in translated sentences.** Sphinx parses each translated message as a document
  of its own, which has none of the page's glue data, so ``{glue:text}`key``` would find
  nothing. There it becomes ``{glue:text}`<page>.md::key```, myst-nb's reference to a
  page's glue data, resolved after reading: the translation keeps the role as it is.
- **Glued words.** A chapter glues a word that depends on the run (``{glue:md}`` of
  "lower" or "higher"); in a translated edition the word comes from the page's catalog,
  in a translated sentence or on its own (a table cell), spaced from its neighbours by
  the edition's rule (none between Chinese characters, one between Chinese and a Latin
  letter or digit), and a gettext build adds every such word to the page's template.
- **Captions of the table of contents.** ``_toc.yml``'s part captions become toctree
  captions that sphinx-external-toc inserts into the root page after Sphinx translated
  it (its transform runs after Sphinx's ``Locale``); they are translated here, right
  after they are inserted, from the root page's catalog, as Sphinx translates a caption.
- **Words in maths.** Sphinx does not translate maths, so the words of a formula
  (``\text{relevance}``, ``\text{input gate}``) would stay English. Each is a message
  of one catalog shared by every page, ``maths`` (``math_messages``: an aligned row's
  annotation after ``&&`` is one message, TeX and all, so a translation can reorder it;
  elsewhere each ``\text{...}`` with a word): a gettext build writes them to the
  template ``maths.pot``, a translated build puts their translations into the formula.
- **Citations in Chinese.** "Cho 等人（2014）" in the Chinese edition, not "Cho et al.
  [2014]": sphinxcontrib-bibtex's author-year style with Chinese words and brackets.
- **Search in Chinese.** Sphinx's Chinese search segments text with jieba; the glossary's
  Chinese terms (自注意力, 多头注意力, 位置编码, ...) are given to it as a user dictionary, so
  each is indexed, and found, as one word.
- **Nothing executed.** A translated or gettext build must take every notebook from the
  execution cache that the English build filled; a notebook it had to execute is an error.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

from docutils import nodes
from myst_nb.ext.glue.crossref import read_glue_cache
from myst_nb.ext.glue.directives import PasteFigureDirective
from myst_nb.ext.glue.roles import PasteMarkdownRole, PasteRoleAny, PasteTextRole
from myst_nb.ext.glue.utils import RetrievalError, glue_warning, retrieve_glue_data
from sphinx import addnodes
from sphinx.builders.gettext import I18nBuilder, MsgOrigin
from sphinx.locale import get_translation
from sphinx.locale import init as init_locale
from sphinx.transforms import SphinxTransform
from sphinx.transforms.post_transforms import SphinxPostTransform
from sphinx.util import logging
from sphinx.util.i18n import docname_to_domain

from attn_course import i18n

logger = logging.getLogger(__name__)

# Each edition: its language, its name in itself, its folder under _build/html.
EDITIONS = {"en": ("English", ""), "zh_CN": ("中文", "zh")}
_TEMPLATES = Path(__file__).parent / "templates"
_GLOSSARY = Path(__file__).resolve().parent.parent / "book" / "glossary.md"
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")


def _language(config) -> str:
    return config.language or "en"


class LocalizedFigure(PasteFigureDirective):
    """``{glue:figure}`` whose figure speaks the page's language."""

    def run(self):
        env = self.state.document.settings.env
        language = _language(env.config)
        gettext_build = isinstance(env.app.builder, I18nBuilder)
        key = self.arguments[0]
        if language == "en" and not gettext_build:
            return super().run()
        try:
            pickled = retrieve_glue_data(self.document, key + i18n.PICKLE_SUFFIX)
            fig = i18n.unpickle_figure(pickled.data["text/plain"])
        except RetrievalError:
            pickled = fig = None  # not glued by glue_figure: shown as it is
        if gettext_build:
            # The figure's words, and its alt text: the gettext builder drops the image
            # (no output format of a notebook suits it) and its alt with it.
            words = [t.get_text() for t in i18n.figure_words(fig)] if fig else []
            words += [self.options["alt"]] if self.options.get("alt") else []
            result = super().run()
            for node in result:
                if isinstance(node, nodes.figure):
                    node["figure_words"] = words
            return result
        if fig is None:
            return super().run()

        domain = docname_to_domain(env.docname, env.config.gettext_compact)
        dirs = [str(Path(env.srcdir, d)) for d in env.config.locale_dirs]
        catalog, _ = init_locale(dirs, language, domain)
        i18n.translate_figure(fig, catalog.gettext)  # tests/test_figures_zh.py: all translated
        png, png_metadata, missing = i18n.render_png(fig)
        for message in sorted(set(missing)):
            logger.warning(
                f"figure {key!r} in {language}: {message}", location=(env.docname, self.lineno)
            )
        # The redrawn figure goes in as glue data of its own, then the figure directive
        # renders it like any other: caption, alt text, width, name unchanged.
        english = retrieve_glue_data(self.document, key)
        data = dict(english.data, **{"image/png": base64.b64encode(png).decode("ascii")})
        data.pop("image/svg+xml", None)
        glue_data = self.document["nb_renderer"].renderer.nb_client.glue_data
        # its own width: translated words can make the cropped figure wider or narrower
        metadata = dict(english.metadata, **{"image/png": png_metadata})
        glue_data[f"{key}_{language}"] = {"data": data, "metadata": metadata}
        self.arguments[0] = f"{key}_{language}"
        return super().run()


def _page_catalog(env):
    domain = docname_to_domain(env.docname, env.config.gettext_compact)
    dirs = [str(Path(env.srcdir, d)) for d in env.config.locale_dirs]
    return init_locale(dirs, _language(env.config), domain)[0]


def _glued_inline(text: str) -> nodes.inline:
    node = nodes.inline(text, text)
    node["glued_word"] = True  # for SpaceGluedWords
    return node


def _is_cjk(char: str) -> bool:
    return bool(_CJK.match(char))


def _gap(before: str, after: str) -> str | None:
    """The space between two neighbouring characters in Chinese text: none between two
    Chinese characters, one between a Chinese character and a Latin letter or a digit;
    None where the rule says nothing (punctuation, symbols)."""
    if _is_cjk(before) and _is_cjk(after):
        return ""
    if (_is_cjk(before) and after.isascii() and after.isalnum()) or (
        _is_cjk(after) and before.isascii() and before.isalnum()
    ):
        return " "
    return None


class SpaceGluedWords(SphinxTransform):
    """A glued word in a translated sentence takes the spaces the English sentence gave it
    ("损失 {glue:md}`trend` 它"): set the space on each side of a glued word by the
    edition's rule (``_gap``), so "损失高于它" and "PyTorch 2.13.0 的" whichever word
    the run picked."""

    default_priority = 30  # after Sphinx's Locale has put the translated sentences in

    def apply(self, **kwargs):
        if _language(self.config) == "en" or isinstance(self.app.builder, I18nBuilder):
            return
        for node in list(self.document.findall(nodes.inline)):
            word, parent = node.astext(), node.parent
            if not node.get("glued_word") or not word.strip() or parent is None:
                continue
            at = parent.index(node)
            before = parent[at - 1] if at > 0 else None
            text = str(before).rstrip()  # (a docutils Text is true even when empty)
            if isinstance(before, nodes.Text) and text:
                gap = _gap(text[-1], word.strip()[0])
                if gap is not None:
                    parent.replace(before, nodes.Text(text + gap))
            after = parent[at + 1] if at + 1 < len(parent) else None
            text = str(after).lstrip()
            if isinstance(after, nodes.Text) and text:
                gap = _gap(word.strip()[-1], text[0])
                if gap is not None:
                    parent.replace(after, nodes.Text(gap + text))


class SpaceSolutionTitles(SphinxPostTransform):
    """sphinx-exercise titles a solution "Solution to" + " Exercise 2.1" (a link): in
    Chinese "解答 练习 2.1", a space between two Chinese words. Drop it (after
    sphinx-exercise has built the title, its post-transform of priority 21)."""

    default_priority = 22

    def run(self, **kwargs):
        if _language(self.config) == "en":
            return
        for title in self.document.findall(nodes.title):
            if type(title.parent).__name__ != "solution_node" or len(title) < 2:
                continue
            head, link = title[0], title[1]
            text = link.next_node(nodes.Text) if isinstance(link, nodes.Element) else None
            if isinstance(head, nodes.Text) and text is not None and str(head).strip():
                rest = str(text).lstrip()
                if rest and _gap(str(head).rstrip()[-1], rest[0]) == "":
                    text.parent.replace(text, nodes.Text(rest))


def _in_translated_message(role_class):
    """``role_class``, taking glue data from the page when used in a translated message;
    a glued Markdown word speaks the page's language."""

    class Role(role_class):
        def run(self):
            document = self.document
            env = document.settings.env
            translated = "nb_renderer" not in document and (document.current_source or "").endswith(
                "<translated>"
            )
            if role_class is PasteMarkdownRole:
                return self._glued_word(env, translated)
            if translated and "::" not in self.text:
                page = Path(env.doc2path(env.docname)).name
                if issubclass(role_class, PasteTextRole) and ":" not in self.text:
                    # glue:text splits its format off at the last ':', which would
                    # cut "page::key" in two: give it its default format explicitly
                    self.text += ":s"
                self.text = f"{page}::{self.text}"
            return super().run()

        def _glued_word(self, env, translated):
            """A run-dependent word (``{glue:md}`` of a short Markdown text): the gettext
            build puts it into the page's template, a translated build shows its
            translation. In a translated message the page's glue data is read from the
            cache myst-nb writes for cross-page references (``{glue:md}`` has none)."""
            key = self.text.rsplit(":", 1)[0] if ":" in self.text else self.text
            if translated:
                cache = read_glue_cache(env.mystnb_config.output_folder, env.docname)
                word = cache.get(key, {}).get("data", {}).get("text/markdown")
                if word is None:
                    return [], [
                        glue_warning(f"no glued Markdown {key!r}", self.document, self.line)
                    ]
                text = _page_catalog(env).gettext(word)
                return [_glued_inline(text)], []  # as myst-nb renders {glue:md}
            if _language(env.config) != "en" and not isinstance(env.app.builder, I18nBuilder):
                # a word outside any translated message: a table cell that holds only the
                # word is no message, Sphinx leaves it as it is
                try:
                    word = retrieve_glue_data(self.document, key).data.get("text/markdown")
                except RetrievalError:
                    word = None
                if word is not None:
                    return [_glued_inline(_page_catalog(env).gettext(word))], []
            result, messages = super().run()
            if isinstance(env.app.builder, I18nBuilder):
                try:
                    word = retrieve_glue_data(self.document, key).data.get("text/markdown")
                except RetrievalError:
                    return result, messages
                wrapper = nodes.inline("", "", *result)  # the template gets the word
                try:  # and, when glued with attn_course.i18n.glue_word, every choice
                    choices = retrieve_glue_data(self.document, key + i18n.WORDS_SUFFIX)
                    wrapper["glued_words"] = i18n.glued_words(choices.data["text/plain"])
                except RetrievalError:
                    wrapper["glued_words"] = [word]
                return [wrapper], messages
            return result, messages

    Role.__name__ = role_class.__name__
    return Role


def _add_figure_words(app, doctree, docname):
    """Gettext builds: a figure's words and alt text go into its page's template."""
    builder = app.builder
    if not isinstance(builder, I18nBuilder):
        return
    catalog = builder.catalogs[docname_to_domain(docname, app.config.gettext_compact)]
    for figure in doctree.findall(nodes.figure):
        for words in figure.get("figure_words", []):
            catalog.add(words, MsgOrigin(figure.source or docname, figure.line or 0))
    for node in doctree.findall(_is_math):  # the words of its formulas: the maths catalog
        for _, _, message in math_messages(node.astext()):
            builder.catalogs[MATHS_DOMAIN].add(
                message, MsgOrigin(node.source or docname, node.line or 0)
            )
    for node in doctree.findall(lambda n: isinstance(n, nodes.Element) and "glued_words" in n):
        for word in node["glued_words"]:
            if i18n.has_words(word):  # a version number has nothing to translate
                catalog.add(word, MsgOrigin(node.source or docname, node.line or 0))


class TranslateTocCaptions(SphinxTransform):
    """The toctree captions sphinx-external-toc inserts (its ``InsertToctrees``, priority
    100) come after Sphinx's ``Locale`` (20): translate them as ``Locale`` would have,
    through ``toctree.apply_translated_message``, from the page's catalog."""

    default_priority = 101  # right after InsertToctrees, before the doctree is read

    def apply(self, **kwargs):
        if _language(self.config) == "en" or isinstance(self.app.builder, I18nBuilder):
            return
        catalog = None
        for node in self.document.findall(addnodes.toctree):
            caption = node.get("rawcaption") or node.get("caption")
            if not caption:
                continue
            catalog = catalog or _page_catalog(self.env)
            node["rawcaption"] = caption
            translated = catalog.gettext(caption)
            if translated != caption:
                node.apply_translated_message(caption, translated)


# The words of every page's formulas are one catalog (locales/<lang>/LC_MESSAGES/maths.po):
# they are notation, the same on every page, and none collides with a page's own message
# ("model" in $d_\text{model}$ is not a figure's "model").
MATHS_DOMAIN = "maths"
_TEXT = re.compile(r"\\text\{((?:[^{}]|\{[^{}]*\})*)\}")
_WORD = re.compile(r"[A-Za-z]{2,}")


def math_messages(tex: str) -> list[tuple[int, int, str]]:
    """(start, end, message) of every stretch of a formula's TeX that holds words: the
    annotation of an aligned row (what follows its last ``&&``, up to ``\\\\``) as a
    whole; elsewhere the content of each ``\\text{...}``, its outer spaces left out."""
    found = []
    for line in re.finditer(r"[^\n]+", tex):
        row = line.group()
        if "&&" in row:
            start = row.rindex("&&") + 2
            end = len(row) - len(re.search(r"(\s*\\\\)?\s*$", row[start:]).group())
            note = row[start:end]
            if any(_WORD.search(t) for t in _TEXT.findall(note)):
                lead = len(note) - len(note.lstrip())
                found.append((line.start() + start + lead, line.start() + end, note.strip()))
                continue
        for text in _TEXT.finditer(row):
            content = text.group(1)
            if _WORD.search(content):
                lead = len(content) - len(content.lstrip())
                first = line.start() + text.start(1) + lead
                found.append((first, first + len(content.strip()), content.strip()))
    return found


def translate_math(tex: str, gettext) -> str:
    """The formula with each of its ``math_messages`` translated."""
    for start, end, message in reversed(math_messages(tex)):
        tex = tex[:start] + gettext(message) + tex[end:]
    return tex


def _is_math(node) -> bool:
    return isinstance(node, (nodes.math, nodes.math_block))


class TranslateMath(SphinxTransform):
    """A translated edition: the words of every formula from the page's catalog (after
    Sphinx's ``Locale``, so a translated paragraph's maths is translated too)."""

    default_priority = 25

    def apply(self, **kwargs):
        if _language(self.config) == "en" or isinstance(self.app.builder, I18nBuilder):
            return
        catalog = None
        for node in list(self.document.findall(_is_math)):
            if not math_messages(node.astext()):
                continue
            if catalog is None:
                dirs = [str(Path(self.env.srcdir, d)) for d in self.config.locale_dirs]
                catalog = init_locale(dirs, _language(self.config), MATHS_DOMAIN)[0]
            node[:] = [nodes.Text(translate_math(node.astext(), catalog.gettext))]


def _edition_links(app, pagename, templatename, context, doctree):
    language = _language(app.config)
    here = EDITIONS.get(language, (language, language))[1]
    up = "../" * (pagename.count("/") + (1 if here else 0))  # to the English root
    # The switch goes first in the article header (sphinx-book-theme's slot, filled
    # from its theme options by the time pages are rendered).
    end = context.get("theme_article_header_end") or []
    if isinstance(end, str):
        end = [e.strip() for e in end.split(",") if e.strip()]
    if "language-switch.html" not in end:
        context["theme_article_header_end"] = ["language-switch.html", *end]
    context["course_editions"] = [
        {
            "name": name,
            "lang": lang.replace("_", "-"),
            "url": f"{up}{folder + '/' if folder else ''}{pagename}.html",
            "current": lang == language,
        }
        for lang, (name, folder) in EDITIONS.items()
    ]
    if language != "en":
        # _config.yml's search_bar_text is English; the Sphinx catalog has "Search".
        context["theme_search_bar_text"] = get_translation("sphinx")("Search") + "…"
        # The book's title is the root page's title, translated in that page's catalog.
        root = docname_to_domain(app.config.root_doc, app.config.gettext_compact)
        dirs = [str(Path(app.srcdir, d)) for d in app.config.locale_dirs]
        context["docstitle"] = init_locale(dirs, language, root)[0].gettext(context["docstitle"])


def _add_templates(app, config):
    config.templates_path.append(str(_TEMPLATES))


def glossary_terms(glossary: Path = _GLOSSARY) -> list[str]:
    """The Chinese terms of the glossary's tables (their second column), one per term: a
    cell "软注意力、硬注意力" holds two; a parenthesis ("（LSTM）") is not part of the term."""
    terms = []
    for line in glossary.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or cells[0] == "English" or not _CJK.search(cells[1]):
            continue  # not a row of terms, or the header
        for term in re.split(r"[、，,/]", re.sub(r"[（(][^）)]*[）)]", "", cells[1])):
            if _CJK.search(term) and term.strip() not in terms:
                terms.append(term.strip())
    return terms


def _chinese_citations(app, config):
    """Citations as a Chinese text writes them: "Cho 等人（2014）", "（Bahdanau 等人，2015）",
    not "Cho et al. [2014]" (sphinxcontrib-bibtex's author-year style, its words and
    brackets changed)."""
    style = getattr(config, "bibtex_reference_style", None)  # (a book may cite nothing)
    if not _language(config).startswith("zh") or style != "author_year":
        return
    from dataclasses import dataclass, field

    from sphinxcontrib.bibtex.plugin import register_plugin
    from sphinxcontrib.bibtex.style.referencing import BracketStyle, PersonStyle
    from sphinxcontrib.bibtex.style.referencing.author_year import AuthorYearReferenceStyle

    def brackets():
        return BracketStyle(left="（", right="）", sep="；", sep2="；", last_sep="；")

    @dataclass
    class ChineseAuthorYear(AuthorYearReferenceStyle):
        bracket_textual: BracketStyle = field(default_factory=brackets)
        bracket_parenthetical: BracketStyle = field(default_factory=brackets)
        person: PersonStyle = field(
            default_factory=lambda: PersonStyle(
                sep="、", sep2=" 和 ", last_sep=" 和 ", other=" 等人"
            )
        )
        author_year_sep: str = "，"
        text_reference_sep: str = ""

    name = f"{style}_{_language(config)}"
    register_plugin("sphinxcontrib.bibtex.style.referencing", name, ChineseAuthorYear, force=True)
    config.bibtex_reference_style = name


def _search_dictionary(app, config):
    """Give Sphinx's Chinese search (jieba) the glossary's terms as a user dictionary."""
    if not _language(config).startswith("zh"):
        return
    path = Path(app.doctreedir) / "search-terms-zh.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    # jieba's user dictionary: "word frequency tag"; a high frequency keeps a term whole
    # ("作业 notebook" cannot be one: a space separates the dictionary's fields)
    words = [t for t in glossary_terms() if " " not in t]
    path.write_text("".join(f"{t} 100000 n\n" for t in words), encoding="utf-8")
    config.html_search_options = {**(config.html_search_options or {}), "dict": str(path)}


def _cache_records(app) -> dict[int, float]:
    from jupyter_cache import get_cache

    path = app.config.nb_execution_cache_path
    if not path or not Path(path).is_dir():
        return {}
    return {r.pk: r.created.timestamp() for r in get_cache(path).list_cache_records()}


def _remember_cache(app):
    app.env.course_cache_before = _cache_records(app)  # not pickled: set on every build


def _check_nothing_executed(app, exception):
    translated = _language(app.config) != "en" or isinstance(app.builder, I18nBuilder)
    if exception is not None or not translated or app.config.nb_execution_mode == "off":
        return
    before = getattr(app.env, "course_cache_before", {})
    executed = [pk for pk, created in _cache_records(app).items() if before.get(pk) != created]
    if executed:
        logger.warning(
            f"the {_language(app.config)} {app.builder.name} build executed notebooks "
            f"(cache records {executed}): it must reuse the English build's execution cache; "
            "build the English edition first (make book)"
        )


def setup(app):
    app.add_directive_to_domain("glue", "figure", LocalizedFigure, override=True)
    app.add_role("glue", _in_translated_message(PasteRoleAny)(), override=True)
    for name, role in [("", PasteRoleAny), ("any", PasteRoleAny), ("text", PasteTextRole)]:
        app.add_role_to_domain("glue", name, _in_translated_message(role)(), override=True)
    app.add_role_to_domain("glue", "md", _in_translated_message(PasteMarkdownRole)(), override=True)
    app.add_transform(TranslateTocCaptions)
    app.add_transform(TranslateMath)
    app.add_transform(SpaceGluedWords)
    app.add_post_transform(SpaceSolutionTitles)
    app.connect("config-inited", _add_templates)
    app.connect("config-inited", _search_dictionary)
    app.connect("config-inited", _chinese_citations)
    app.connect("builder-inited", _remember_cache)
    app.connect("doctree-resolved", _add_figure_words)
    app.connect("html-page-context", _edition_links, priority=900)  # after the theme
    app.connect("build-finished", _check_nothing_executed)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
