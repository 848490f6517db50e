"""_ext/course_downloads.py on a one-page project: in the English build a chapter's
``{download}`` of ``exercises/<a>/<a>.ipynb`` is that notebook; in the Chinese build (``-D
language=zh_CN``) the same role, untouched by the translation, gives the Chinese notebook,
``exercises/<a>/zh_CN/<a>.ipynb``, under the same file name; a notebook without a Chinese
version stays the English one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.book]

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

CONF = f"""
import sys
sys.path.insert(0, {str(ROOT / "_ext")!r})
extensions = ["course_downloads"]
exclude_patterns = ["_build", "exercises"]
"""

PAGE = """Chapter
=======

Do :download:`the assignment <../exercises/demo/demo.ipynb>`, then
:download:`the other one <../exercises/plain/plain.ipynb>`.
"""


def _build(src: Path, out: Path, *extra: str) -> dict[str, bytes]:
    proc = subprocess.run(
        [str(BIN / "sphinx-build"), "-b", "html", "-q", "-W", *extra, str(src), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {p.name: p.read_bytes() for p in (out / "_downloads").rglob("*.ipynb")}


def test_the_chinese_build_downloads_the_chinese_notebook(tmp_path):
    src = tmp_path / "src"
    (src / "book").mkdir(parents=True)
    (src / "conf.py").write_text(CONF)
    (src / "index.rst").write_text(".. toctree::\n\n   book/chapter\n")
    (src / "book" / "chapter.rst").write_text(PAGE)
    for folder, text in (
        ("exercises/demo", '{"english": 1}'),
        ("exercises/demo/zh_CN", '{"chinese": 1}'),
        ("exercises/plain", '{"plain": 1}'),
    ):
        (src / folder).mkdir(parents=True, exist_ok=True)
        name = Path(folder).name if folder.count("/") == 1 else "demo"
        (src / folder / f"{name}.ipynb").write_text(text)
    english = _build(src, tmp_path / "en")
    chinese = _build(src, tmp_path / "zh", "-D", "language=zh_CN")
    assert english == {"demo.ipynb": b'{"english": 1}', "plain.ipynb": b'{"plain": 1}'}
    assert chinese == {"demo.ipynb": b'{"chinese": 1}', "plain.ipynb": b'{"plain": 1}'}
