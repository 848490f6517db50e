"""The Chinese edition's house style, checked on the catalogs and on the built pages.

- **One term per idea.** The glossary (``book/glossary.md``) holds the Chinese term of
  each idea, after d2l-zh where it has one; VARIANTS lists the other names a translation
  has used for one of them, which no catalog may use again.
"""

from __future__ import annotations

import sys
from pathlib import Path

from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[1]
CATALOGS = ROOT / "locales" / "zh_CN" / "LC_MESSAGES"
GLOSSARY = ROOT / "book" / "glossary.md"
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
