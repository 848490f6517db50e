"""Execute the book's chapters in parallel, into the cache the book build then reads.

    python scripts/execute_book.py        # `make book` runs this before `jupyter-book build`

The chapters are independent notebooks, so they run side by side on the cores through
jupyter-cache's own parallel executor (``local-parallel``: one worker per core, each chapter
in its own kernel, in its own folder as the build would run it). Each one lands in
``_build/.jupyter_cache``, read the way myst-nb reads it (the ``myst_nb_md`` reader), so
``jupyter-book build`` (``execute_notebooks: cache``) finds every chapter cached and executes
nothing. A chapter that is already cached is not run again. A chapter that fails is reported
with its traceback, and the exit status is 1.

jupyter-cache knows a chapter by its own code only, and Sphinx re-reads a page only when its
source changes: after a change to ``attn_course`` (a diagram, a model) both would keep showing
the old outputs. So the package's code is fingerprinted (``library_fingerprint``); when it
changed since the last run, the cache and the builds' doctrees are cleared and every chapter
runs again (trained models are kept: ``attn_course.experiments.length`` keys them on the code
they depend on).

The longest chapters are queued first (``FIRST``), so the short ones fill the other core:
Chapter 5, which trains the six models of its comparison, takes one core on its own for about
as long as every other chapter takes on the other.
"""

import hashlib
import logging
import shutil
import sys
from pathlib import Path

import yaml
from book_toc import toc_entries  # scripts/ is on sys.path, beside this file
from jupyter_cache import get_cache
from jupyter_cache.executors import load_executor

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "_build" / ".jupyter_cache"
FINGERPRINT = ROOT / "_build" / "library.sha256"  # of the package the last run executed with
READER = {"type": "plugin", "name": "myst_nb_md"}  # what myst-nb records for a MyST notebook
# Queue order for a fresh cache: the longest chapters first (Chapter 5 trains the six
# models of its comparison), so the two workers finish at about the same time.
FIRST = [
    "book/05_transformer",
    "book/02_attention",
    "book/01_encoder_decoder",
    "book/04_self_attention",
]


def is_notebook(path: Path) -> bool:
    """A MyST Markdown notebook: front matter with a kernelspec (what myst-nb executes)."""
    text = path.read_text()
    return text.startswith("---\n") and "kernelspec:" in text.split("\n---", 1)[0]


def notebooks() -> list[Path]:
    files = [entry.doc for entry in toc_entries()]
    order = [f for f in FIRST if f in files] + [f for f in files if f not in FIRST]
    return [ROOT / f"{f}.md" for f in order if is_notebook(ROOT / f"{f}.md")]


def library_fingerprint(package: Path = ROOT / "attn_course") -> str:
    """A hash of the package code the chapters run: every module but the grader's."""
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package)
        if relative.parts[0] == "grading":
            continue
        digest.update(relative.as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def forget_if_library_changed(logger) -> None:
    """Clear the execution cache and every doctree when the package changed since the last
    run (see the module docstring)."""
    now = library_fingerprint()
    before = FINGERPRINT.read_text().strip() if FINGERPRINT.is_file() else None
    if before == now:
        return
    if before is not None:
        logger.info("attn_course changed since the last build: every chapter runs again")
    get_cache(str(CACHE)).clear_cache()
    for doctrees in ROOT.glob("_build/.doctrees*"):
        shutil.rmtree(doctrees)
    FINGERPRINT.parent.mkdir(parents=True, exist_ok=True)
    FINGERPRINT.write_text(now + "\n")


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logger = logging.getLogger("execute_book")
    forget_if_library_changed(logger)
    cache = get_cache(str(CACHE))
    records = [cache.add_nb_to_project(str(path), read_data=READER) for path in notebooks()]
    pks = [r.pk for r in records]
    todo = cache.list_unexecuted(filter_pks=pks)
    logger.info(f"{len(pks) - len(todo)} of {len(pks)} notebooks cached, executing {len(todo)}")
    if not todo:
        return 0
    execute = yaml.safe_load((ROOT / "_config.yml").read_text())["execute"]
    result = load_executor("local-parallel", cache, logger=logger).run_and_cache(
        filter_pks=[r.pk for r in todo],
        timeout=execute["timeout"],
        allow_errors=execute["allow_errors"],
    )
    failed = result.excepted + result.errored
    for uri in failed:
        record = cache.get_project_record(uri)
        logger.error(f"\n{Path(uri).relative_to(ROOT)} failed:\n{record.traceback or ''}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
