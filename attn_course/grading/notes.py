"""What the grader writes into a notebook about the run itself (a cell that timed out, a
kernel that died, cells not run), one definition each, in the notebook's language.

Used by ``attn-course grade`` and plain nbgrader (:mod:`.execute`) and by ``attn-course
check`` (:mod:`.selfcheck`); the messages are msgids of the ``checks`` catalog
(``scripts/notebook_catalogs.py`` extracts them from this module).
"""

from attn_course.grading.languages import ENGLISH, notebook_language
from attn_course.messages import N_, gettext_

TIMEOUT = N_(
    "this cell ran longer than {timeout} s (perhaps an endless loop) and was interrupted; "
    "the other parts keep their points"
)
HUNG = N_(
    "this cell ran for more than {timeout} s and did not stop when interrupted; the notebook "
    "was run again in a fresh kernel without this cell"
)
DIED = N_(
    "the kernel died while running this cell (os._exit, sys.exit in a thread, a crash, or "
    "the memory limit); the notebook was run again in a fresh kernel without this cell"
)
MEMORY = N_(
    "this cell exhausted the kernel's memory; the notebook was run again in a fresh kernel "
    "without this cell"
)
GAVE_UP = N_("not run: the kernel died too many times in earlier cells")
OUT_OF_TIME = N_("not run: the notebook used up its total time budget in earlier cells")


def say(message: str, nb, **values) -> str:
    """``message`` (one of this module's) in the language of ``nb``, its ``{}`` filled."""
    return gettext_(message, notebook_language(nb, unknown=ENGLISH)).format(**values)
