"""The feedback HTML a student gets: results in words, hidden tests kept hidden, no network.

nbgrader's ``GenerateFeedback`` renders the autograded notebook with its HTML exporter and
its ``feedback`` template. Out of the box that page shows the hidden tests in full (with
their random seeds: a student could rebuild the inputs), names every entry of its index
"Test cell", loads MathJax from a CDN and runs the words of markdown tables together. This
module changes that through nbgrader's own extension points, as traits:

- :class:`HideHiddenTests`, a ``GenerateFeedback`` preprocessor: nbgrader's
  ``ClearHiddenTests`` (the same delimiters ``generate_assignment`` removes) on the test
  cells, and a test cell's error shown as its message, without the traceback (a traceback
  quotes the failing line of the hidden test);
- :class:`RenderMaths`, a ``GenerateFeedback`` preprocessor: the markdown's TeX as MathML,
  rendered by the browser itself (no script, no network, a few kB);
- :class:`FeedbackIndex`, a ``GenerateFeedback`` preprocessor: each test's name, points and
  message for the page's index;
- :data:`TEMPLATE_DIR`, with the ``attn_feedback`` template (its
  ``attn_feedback.html.j2`` extends nbgrader's ``feedback/index.html.j2``);
- :func:`configure_feedback`, which adds all of it to a traitlets config.

Register with ``configure_feedback(c)`` (``nbgrader_config.py`` does, so plain
``nbgrader generate_feedback`` gets it too).
"""

from __future__ import annotations

import re
from pathlib import Path

from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor, Preprocessor
from nbgrader.preprocessors import ClearHiddenTests, GetGrades
from traitlets import Bool, List

from attn_course.grading.cells import error_line, is_test_cell
from attn_course.grading.languages import ENGLISH, notebook_language, translate_markdown
from attn_course.messages import N_, text
from attn_course.messages import gettext_ as _

__all__ = [
    "TEMPLATE_DIR",
    "TEMPLATE_NAME",
    "FeedbackIndex",
    "HideHiddenTests",
    "RenderMaths",
    "TranslateFeedback",
    "configure_feedback",
    "maths_to_mathml",
]

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
TEMPLATE_NAME = "attn_feedback"


class HideHiddenTests(ClearHiddenTests):
    """nbgrader's ``ClearHiddenTests``, on the test cells only (a student's own cell cannot
    make the feedback fail with a stray delimiter), leaving a line where tests were removed;
    a test cell's error keeps its message and loses its traceback."""

    # The exporter sets NbConvertBase.display_data_priority for its preprocessors; nbgrader's
    # base class redeclares the trait without config=True, so traitlets warned at every
    # feedback run. Configurable here, as in nbgrader's own GetGrades: the warning is gone.
    display_data_priority = List(GetGrades.class_traits()["display_data_priority"].default()).tag(
        config=True
    )

    def preprocess_cell(self, cell, resources, cell_index):
        if not is_test_cell(cell):
            return cell, resources
        before = cell.source
        cell, resources = super().preprocess_cell(cell, resources, cell_index)
        if cell.source != before:
            note = _("# ... and hidden tests, run when graded", resources.get("language"))
            cell.source = cell.source.rstrip() + "\n" + note
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                output["traceback"] = [error_line(output)]
        return cell, resources


# Maths in the notebook's markdown: $$display$$ and $inline$, outside code. A code span or
# fence is matched first, so that a dollar inside code stays code; \$ is a literal dollar.
_MARKDOWN_MATHS = re.compile(
    r"(?P<fence>^(?P<tick>`{3,}|~{3,})[^\n]*\n.*?^(?P=tick)[ \t]*$)"
    r"|(?P<code>(?P<run>`+).+?(?P=run))"
    r"|(?P<escaped>\\\$)"
    r"|\$\$(?P<display>.+?)\$\$"
    r"|\$(?P<inline>[^$\s](?:[^$]*?[^$\s])?)\$",
    re.DOTALL | re.MULTILINE,
)


def maths_to_mathml(markdown: str) -> str:
    """``markdown`` with its TeX maths as MathML, which browsers render with no script and no
    network (MathML Core): the feedback stays one small file that renders offline wherever it
    is mailed or uploaded, instead of carrying a 2 MB MathJax copy each. TeX that
    ``latex2mathml`` cannot read stays as it was."""
    from latex2mathml.converter import convert

    def render(m: re.Match) -> str:
        tex, display = (m["display"], "block") if m["display"] is not None else (m["inline"], None)
        if tex is None:
            return m.group(0)  # code, or an escaped dollar
        try:
            return convert(tex.strip(), display=display or "inline")
        except Exception:  # noqa: BLE001  (a TeX construct it does not know: keep the source)
            return m.group(0)

    return _MARKDOWN_MATHS.sub(render, markdown)


# The feedback page's own words (attn_feedback.html.j2), translated with the notebook
WORDS = {
    "score": N_("{notebook}: score {score} of {max_score}"),
    "test": N_("test"),
    "points": N_("points"),
    "result": N_("result"),
    "late": N_("late submission penalty"),
}


class TranslateFeedback(Preprocessor):
    """A ``GenerateFeedback`` preprocessor, first: the language of the graded notebook
    (``metadata.attn_course.language``, recorded when it was graded) in ``resources``, and
    its locked markdown in that language again (grading mapped it to the instructor's
    English); the page's words in that language."""

    enabled = Bool(True, help="nbconvert's preprocessors are off unless enabled").tag(config=True)

    def preprocess(self, nb, resources):
        language = notebook_language(nb)
        resources["language"] = language
        resources.setdefault("attn_feedback", {})["words"] = {
            key: _(word, language) for key, word in WORDS.items()
        }
        if language != ENGLISH:
            for cell in nb.cells:
                if cell.cell_type == "markdown" and cell.metadata.get("nbgrader", {}).get("locked"):
                    cell.source = translate_markdown(cell.source, language)
        return nb, resources


class RenderMaths(Preprocessor):
    """A ``GenerateFeedback`` preprocessor: the maths of every markdown cell as MathML."""

    enabled = Bool(True, help="nbconvert's preprocessors are off unless enabled").tag(config=True)

    def preprocess_cell(self, cell, resources, cell_index):
        if cell.cell_type == "markdown":
            cell.source = maths_to_mathml(cell.source)
        return cell, resources


class FeedbackIndex(Preprocessor):
    """Puts in ``resources["attn_feedback"]`` what the template shows: per test cell its
    ``grade_id``, score, points and message ("passed", or its error in one line). Runs after
    ``GetGrades`` (it reads the scores GetGrades sets)."""

    enabled = Bool(True, help="nbconvert's preprocessors are off unless enabled").tag(config=True)

    def preprocess(self, nb, resources):
        language = resources.get("language") or ENGLISH
        tests = []
        for cell in nb.cells:
            if not is_test_cell(cell):
                continue
            meta = cell.metadata["nbgrader"]
            errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
            tests.append(
                {
                    "grade_id": meta.get("grade_id", ""),
                    "score": meta.get("score") or 0.0,
                    "points": meta.get("points") or 0.0,
                    "passed": not errors,
                    "message": (
                        text(error_line(errors[0]), language) if errors else _("passed", language)
                    ),
                }
            )
        resources.setdefault("attn_feedback", {})["tests"] = tests
        return nb, resources


def configure_feedback(c) -> None:
    """Add the feedback settings to the traitlets config ``c`` (a course's ``nbgrader_config``
    or the config of a ``GenerateFeedback`` converter)."""
    import nbgrader

    nbgrader_templates = Path(nbgrader.__file__).parent / "server_extensions/formgrader/templates"
    c.GenerateFeedback.preprocessors = [
        TranslateFeedback,
        GetGrades,
        HideHiddenTests,
        CSSHTMLHeaderPreprocessor,
        RenderMaths,
        FeedbackIndex,
    ]
    c.HideHiddenTests.enforce_metadata = False  # test cells only: the rule does not apply
    # Scoped to the feedback converter's exporter: a plain c.HTMLExporter setting would
    # also replace the template of the formgrader (it loads nbgrader_config.py after its own)
    exporter = c.GenerateFeedback.HTMLExporter
    exporter.template_name = TEMPLATE_NAME
    exporter.template_file = f"{TEMPLATE_NAME}.html.j2"
    exporter.extra_template_basedirs = [str(TEMPLATE_DIR), str(nbgrader_templates)]
    # nbgrader's feedback template inlines Bootstrap (117 kB) into every file; this folder
    # holds a small stylesheet under that name, in place of nbgrader's Bootstrap folder
    exporter.extra_template_paths = [str(TEMPLATE_DIR / f"{TEMPLATE_NAME}_css")]
