"""The Chinese edition's house style, checked on the catalogs and on the built pages.

- **One term per idea.** The glossary (``book/glossary.md``) holds the Chinese term of
  each idea, after d2l-zh where it has one; VARIANTS lists the other names a translation
  has used for one of them, which no catalog may use again.
- **One space between Chinese and Latin.** A Chinese character and a Latin letter or a
  digit are separated by one space ("第 2 章", "RNN 编码器"), and so are a Chinese
  character and inline maths, code or a glued value; two Chinese characters never are
  ("损失高于它", not "损失 高于 它"); nor is full-width punctuation from its neighbours.
- **Citations.** A cited paper is named by its authors as a Chinese author writes them:
  "Cho 等人", and the citation roles print "Cho 等人（2014）" (``_ext/course_i18n.py``),
  never the English "et al.".
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from book_toc import toc_entries
from bs4 import BeautifulSoup

ROOT = Path(__file__).resolve().parents[1]
CATALOGS = ROOT / "locales" / "zh_CN" / "LC_MESSAGES"
GLOSSARY = ROOT / "book" / "glossary.md"
EDITION = "zh"
PAGES = [doc for doc, _ in toc_entries()]
sys.path.insert(0, str(ROOT / "_ext"))
from course_i18n import glossary_terms  # noqa: E402

# A variant a translation used -> the glossary's term for the same idea.
VARIANTS = {
    "层归一化": "层规范化",  # layer normalisation (d2l-zh)
    "批量归一化": "批量规范化",
    "后归一化": "后置规范化",  # post-norm
    "前归一化": "前置规范化",  # pre-norm
    "相加并归一化": "相加并规范化",  # add & norm
    "作业笔记本": "作业 notebook",
    "隐藏状态": "隐状态",
    "结束标记": "结束词元",
    "带掩码自注意力": "带掩码的自注意力",
    "教师强制": "强制教学",
    "注意力得分": "注意力分数",
    "令牌": "词元",
    "完全匹配": "精确匹配",
    "输入馈入": "输入馈送",
    "近期效应": "近因效应",
    "编码器块": "编码器层",
    "解码器块": "解码器层",
    "自我注意力": "自注意力",
    "打分函数": "评分函数",
    "批大小": "批量大小",
    "语义代码": "语义编码",
    "残差链接": "残差连接",
    "前向网络": "前馈网络",
}

CJK = "\u3400-\u4dbf\u4e00-\u9fff"
FULL_WIDTH = "，。、：；！？（）“”‘’《》【】"


def catalog_messages() -> list[tuple[str, str, str]]:
    """(catalog, msgid, msgstr) of every translated message of every zh catalog."""
    found = []
    for path in sorted(CATALOGS.rglob("*.po")):
        with path.open("rb") as f:
            for m in read_po(f):
                if m.id and m.string and isinstance(m.string, str):
                    found.append((path.relative_to(CATALOGS).as_posix(), m.id, m.string))
    return found


def _short(msgid: str) -> str:
    return " ".join(msgid.split())[:70]


# --------------------------------------------------------------------------
# One term per idea
# --------------------------------------------------------------------------


def variant_problems(messages) -> list[str]:
    return [
        f"{where}: {variant!r} -> {term!r} in {_short(msgid)!r}"
        for where, msgid, msgstr in messages
        for variant, term in VARIANTS.items()
        if variant in msgstr
    ]


def test_variant_check_finds_a_variant():
    messages = [("a.po", "Layer norm", "层归一化"), ("a.po", "Layer norm", "层规范化")]
    assert variant_problems(messages) == ["a.po: '层归一化' -> '层规范化' in 'Layer norm'"]


def test_no_catalog_uses_a_variant_of_a_glossary_term():
    problems = variant_problems(catalog_messages())
    assert not problems, "variants of the glossary's terms:\n" + "\n".join(problems)


def test_every_preferred_term_is_in_the_glossary():
    glossary = GLOSSARY.read_text(encoding="utf-8")
    terms = glossary_terms(GLOSSARY)
    missing = [t for t in set(VARIANTS.values()) if t not in terms and t not in glossary]
    assert not missing, f"terms missing from book/glossary.md: {missing}"
    variants = [v for v in VARIANTS if v in glossary]
    assert not variants, f"the glossary uses variants: {variants}"


# --------------------------------------------------------------------------
# Spacing
# --------------------------------------------------------------------------

# A piece of a message: one character of its text, or one piece of markup as a reader sees
# its edges: maths and code as Latin, a glued value as a digit, a role with its own text
# as that text, a {doc} link as the Chinese title of its page, a citation as Sphinx prints
# it in this edition; a glued word as UNKNOWN, on which the rule says nothing (the
# extension spaces glued words itself, by the word the run picked).
UNKNOWN = "\ue001"
_ROLE = re.compile(r"\{(?P<role>[\w:.-]+)\}`(?P<content>[^`]*)`")
_LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^)]*)\)")
_MARKUP = re.compile(
    r"\{(?P<role>[\w:.-]+)\}`(?P<content>[^`]*)`"
    r"|\$\$.+?\$\$|\$[^$]+?\$"
    r"|(?P<ticks>`+).+?(?P=ticks)"
    r"|!?\[(?P<text>[^\]]*)\]\([^)]*\)"
    r"|\\[^\w\s]"
    r"|(?P<emphasis>\*+)",
    re.S,
)


def _explicit(content: str) -> re.Match | None:
    return re.fullmatch(r"(?s)(.*?)(\s*<[^<>]+>)", content)


def page_titles() -> dict[str, str]:
    """Each page's Chinese title (its first heading's translation), by the name a {doc}
    link gives it."""
    titles = {}
    for doc in PAGES:
        fenced, title = False, None
        for line in (ROOT / f"{doc}.md").read_text(encoding="utf-8").splitlines():
            fenced ^= line.startswith(("```", ":::"))
            if not fenced and line.startswith("# "):
                title = line[2:].strip()
                break
        with (CATALOGS / f"{doc}.po").open("rb") as f:
            found = read_po(f).get(title) if title else None
        if found is not None and found.string:
            titles[Path(doc).name] = found.string
    return titles


_TITLES: dict[str, str] = {}


def _title(target: str) -> str | None:
    if not _TITLES:
        _TITLES.update(page_titles())
    return _TITLES.get(Path(target.strip()).name)


def pieces(message: str) -> list[tuple[str, str, str]]:
    """(raw text, first visible character, last visible character) of each piece: one
    per character of plain text, one per piece of markup; an emphasis marker has no
    edges of its own."""
    out = []
    pos = 0
    for m in _MARKUP.finditer(message):
        out += [(c, c, c) for c in message[pos : m.start()]]
        pos = m.end()
        raw = m.group()
        if m["role"]:
            role, explicit = m["role"], _explicit(m["content"])
            text = explicit[1].strip() if explicit else None
            if role == "doc" and not explicit:
                text = _title(m["content"])
            if role.startswith("glue:md") or (role == "doc" and not text):
                out.append((raw, UNKNOWN, UNKNOWN))
            elif text:
                out.append((raw, text[0], text[-1]))
            elif role.startswith("glue"):
                out.append((raw, "0", "0"))
            elif role in ("cite", "cite:p", "cite:ps"):  # "（Cho 等人，2014）"
                out.append((raw, "（", "）"))
            elif role in ("cite:t", "cite:ts"):  # "Cho 等人（2014）"
                out.append((raw, "A", "）"))
            else:
                out.append((raw, "A", "A"))
        elif m["emphasis"]:
            out.append((raw, "", ""))
        elif raw.startswith("\\"):
            out.append((raw, raw[1], raw[1]))
        elif m["text"] is not None:
            text = m["text"].strip() or UNKNOWN
            out.append((raw, text[0], text[-1]))
        else:  # maths, code
            out.append((raw, "A", "A"))
    out += [(c, c, c) for c in message[pos:]]
    return out


def _kind(char: str) -> str:
    if re.match(f"[{CJK}]", char):
        return "cjk"
    if char.isascii() and char.isalnum():
        return "latin"
    if char in FULL_WIDTH:
        return "punct"
    return ""


def gap(before: str, after: str) -> str | None:
    """The rule's space between two visible characters, None where it says nothing."""
    kinds = {_kind(before), _kind(after)}
    if kinds == {"cjk"} or "punct" in kinds and kinds <= {"cjk", "latin", "punct"}:
        return ""
    if kinds == {"cjk", "latin"}:
        return " "
    return None


def _respace_inner(message: str) -> str:
    """The rule inside the text of a link or of a role that has its own text."""

    def role(m: re.Match) -> str:
        explicit = _explicit(m["content"])
        if not explicit or m["role"].startswith(("glue", "cite")):
            return m.group()
        return f"{{{m['role']}}}`{respace(explicit[1])}{explicit[2]}`"

    message = _ROLE.sub(role, message)
    return _LINK.sub(lambda m: f"{m[1]}[{respace(m[2])}]({m[3]})", message)


def respace(message: str) -> str:
    """The message with the rule's spacing wherever plain spaces (or none) separate two
    pieces of text, emphasis markers between them included ("softmax *之前*"); line
    breaks are left as they are."""
    ps = pieces(_respace_inner(message))
    out, i, open_markers = [], 0, set()
    while i < len(ps):
        raw, first, last = ps[i]
        out.append(raw)
        i += 1
        if raw.isspace() or not last:
            if ps[i - 1][0].startswith("*"):
                open_markers ^= {raw}
            continue
        # what follows: spaces, emphasis markers, spaces, then a visible piece
        j, before, markers, after = i, "", "", ""
        while j < len(ps) and ps[j][0] == " ":
            before += " "
            j += 1
        while j < len(ps) and ps[j][0].startswith("*"):
            markers += ps[j][0]
            j += 1
        while markers and j < len(ps) and ps[j][0] == " ":
            after += " "
            j += 1
        if j >= len(ps) or not ps[j][1] or (markers and before and after):
            continue
        want = gap(last, ps[j][1])
        if want is None or (markers and not want):
            continue  # (a space beside a marker may be what makes it one: "**思路。** 深")
        if not markers:
            out.append(want)
        else:
            closing = markers in open_markers if not (before or after) else bool(after)
            out += [markers, want] if closing else [want, markers]
            open_markers ^= {markers}
        i = j
    return "".join(out)


def spacing_problems(messages) -> list[str]:
    problems = []
    for where, msgid, msgstr in messages:
        fixed = respace(msgstr)
        if fixed != msgstr:
            at = next(i for i, (a, b) in enumerate(zip(msgstr, fixed, strict=False)) if a != b)
            problems.append(
                f"{where}: {msgstr[max(at - 12, 0) : at + 12]!r} should read "
                f"{fixed[max(at - 12, 0) : at + 12]!r} ({_short(msgid)!r})"
            )
    return problems


def test_spacing_rule():
    assert respace("第2章的RNN编码器") == "第 2 章的 RNN 编码器"
    assert respace("损失 高于 它") == "损失高于它"
    assert (
        respace("输出 $y_i$ 与`code`的 {glue:text}`n` 个")
        == "输出 $y_i$ 与 `code` 的 {glue:text}`n` 个"
    )
    assert respace("见 {cite:p}`cho2014`。 RNN") == "见{cite:p}`cho2014`。RNN"
    assert respace("由{cite:t}`cho2014` 提出") == "由 {cite:t}`cho2014`提出"
    assert respace("在{doc}`记号 <notation>`一页") == "在{doc}`记号 <notation>`一页"
    assert respace("在 {doc}`记号 <notation>` 一页") == "在{doc}`记号 <notation>`一页"
    # a glued word's spaces are the extension's: left as they are
    assert respace("损失 {glue:md}`trend` 它") == "损失 {glue:md}`trend` 它"
    assert respace("*语义编码* $C$") == "*语义编码* $C$"
    assert respace("在softmax*之前*被设为*RNN*编码器") == "在 softmax *之前*被设为 *RNN* 编码器"
    assert respace("{ref}`第2章 <att>`测量了") == "{ref}`第 2 章 <att>`测量了"
    assert respace("见 {doc}`how_to_use` 一页") == "见{doc}`how_to_use`一页"  # 如何使用本书
    messages = [("a.po", "Chapter 2", "第2章"), ("a.po", "Chapter 3", "第 3 章")]
    assert spacing_problems(messages) == ["a.po: '第2章' should read '第 2 章' ('Chapter 2')"]


def test_catalogs_follow_the_spacing_rule():
    problems = spacing_problems(catalog_messages())
    assert not problems, f"{len(problems)} messages break the spacing rule:\n" + "\n".join(problems)


# on a page: a space between two Chinese characters or beside full-width punctuation, or
# none between Chinese and a Latin letter or digit
_PAGE_PROBLEM = re.compile(
    f"[{CJK}{FULL_WIDTH}][ \t]+[{CJK}{FULL_WIDTH}]|[{CJK}][A-Za-z0-9]|[A-Za-z0-9][{CJK}]"
)


def page_spacing_problems(html: str) -> list[str]:
    """Stray or missing spaces in a page's article as a reader sees it: maths, code and
    glued values count as Latin; code blocks and outputs are left out. (Between Latin
    and full-width punctuation the rule says nothing here: "，RNN" and "。 RNN" read the
    same, and the catalogs' check holds them to the rule.)"""
    article = BeautifulSoup(html, "html.parser").select_one("article.bd-article")
    if article is None:
        return []
    for tag in article.select("pre, script, style, .cell_output, .bibliography, .headerlink"):
        tag.decompose()
    for tag in article.select(".math, code"):
        if not re.search(f"[{CJK}]", tag.get_text()):  # (a download link's text is code)
            tag.replace_with("A")
    problems = []
    for block in article.select("p, h1, h2, h3, h4, h5, h6, td, th, dt, figcaption"):
        text = block.get_text()
        for m in re.finditer(_PAGE_PROBLEM, text):
            found = repr(text[max(m.start() - 10, 0) : m.end() + 10])
            if found not in problems:
                problems.append(found)
    return problems


def test_page_spacing_finds_stray_and_missing_spaces():
    page = (
        '<article class="bd-article"><p>损失 <span>高于</span> 它</p><p>第2章</p>'
        "<p>Cho 等人 （2014）</p>"
        '<p>见 <span class="math">\\(C\\)</span> 的 RNN 编码器</p><pre>第2章</pre>'
        "<p>在<code>第 1 章的作业</code>中</p></article>"
    )
    assert page_spacing_problems(page) == ["'损失 高于 它'", "'第2章'", "'Cho 等人 （2014）'"]


@pytest.mark.book
@pytest.mark.parametrize("doc", PAGES)
def test_chinese_pages_follow_the_spacing_rule(book_html, doc):
    problems = page_spacing_problems((book_html / EDITION / f"{doc}.html").read_text("utf-8"))
    assert not problems, f"{EDITION}/{doc}.html, spacing:\n" + "\n".join(problems)


# --------------------------------------------------------------------------
# Citations
# --------------------------------------------------------------------------


def citation_problems(messages) -> list[str]:
    """'et al.' in a translation's prose (not in maths, whose words maths.po translates;
    not in a message kept as it is, which is code or maths)."""
    return [
        f"{where}: {m.group()!r} in {_short(msgid)!r}"
        for where, msgid, msgstr in messages
        if msgstr != msgid
        for m in re.finditer(r"\w*\s*et al\.?", re.sub(r"\$[^$]*\$", "", msgstr))
    ]


def test_citation_check_finds_et_al():
    messages = [("a.po", "Cho et al.", "Cho et al. 的模型"), ("a.po", "Cho et al.", "Cho 等人")]
    messages += [("a.po", "$\\text{Cho et al.}$", "$\\text{Cho et al.}$")]
    assert citation_problems(messages) == ["a.po: 'Cho et al.' in 'Cho et al.'"]


def test_citations_name_authors_in_chinese():
    problems = citation_problems(catalog_messages())
    assert not problems, "English citations in the Chinese edition:\n" + "\n".join(problems)


def page_citation_problems(html: str) -> list[str]:
    """'et al.' in a page's article, outside the bibliography's list of papers."""
    article = BeautifulSoup(html, "html.parser").select_one("article.bd-article")
    if article is None:
        return []
    for tag in article.select("pre, .cell_output, .bibliography, .math"):
        tag.decompose()
    return sorted({m.group() for m in re.finditer(r"\w+\s+et al\.?", article.get_text())})


def test_page_citation_check_finds_et_al():
    page = (
        '<article class="bd-article"><p>由 <a>Cho <em>et al.</em> [2014]</a> 提出，见 '
        '<a>Cho 等人（2014）</a></p><div class="bibliography">Xu et al.</div></article>'
    )
    assert page_citation_problems(page) == ["Cho et al."]


@pytest.mark.book
@pytest.mark.parametrize("doc", PAGES)
def test_chinese_pages_cite_in_chinese(book_html, doc):
    found = page_citation_problems((book_html / EDITION / f"{doc}.html").read_text("utf-8"))
    assert not found, f"{EDITION}/{doc}.html: English citations {found}"
