"""``checks.run``'s trap: while a student's function runs, calling the library's (or PyTorch's)
ready-made version of what it implements fails the part, however the call is reached, and
everything the trap replaced is put back, however the call ends.

A student's notebook is a namespace where cells were executed: here ``exec`` of the student's
code in a fresh ``__main__`` namespace, as a kernel runs a cell. No kernel, no nbgrader.
The values are checked against hand-computed softmaxes and cosines.
"""

import textwrap
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import attn_course.functional.softmax as library
from attn_course.checks import CallError, LibraryCallError, run

# softmax(log([1, 3])) = [1, 3] / 4
LOGITS = np.log([[1.0, 3.0], [2.0, 2.0]])
PROBS = np.array([[0.25, 0.75], [0.5, 0.5]])


def notebook(source: str) -> dict:
    """The namespace of a student's notebook after running ``source`` in one cell."""
    namespace = {"__name__": "__main__"}
    exec(compile(textwrap.dedent(source), "<student's cell>", "exec"), namespace)
    return namespace


# --- a fair answer passes ------------------------------------------------------------------


def test_a_correct_answer_passes_its_output_swallowed(capsys):
    student = notebook(
        """
        import sys
        import warnings
        import numpy as np

        def softmax(x, axis=-1):
            print("debugging", file=sys.stderr)
            warnings.warn("a harmless warning")
            e = np.exp(x - np.max(x, axis=axis, keepdims=True))
            return e / np.sum(e, axis=axis, keepdims=True)
        """
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = run(student["softmax"], LOGITS)
    np.testing.assert_allclose(got, PROBS)
    assert caught == [] and capsys.readouterr().err == ""


def test_basic_torch_operations_are_allowed():
    student = notebook(
        """
        import torch

        def softmax(x, axis=-1):
            e = torch.exp(x - x.amax(dim=axis, keepdim=True))
            return e / e.sum(dim=axis, keepdim=True)
        """
    )
    got = run(student["softmax"], torch.tensor(LOGITS))
    np.testing.assert_allclose(got.numpy(), PROBS)


def test_what_is_forbidden_depends_on_the_function_graded():
    """F.normalize is not cosine similarity; F.cosine_similarity is."""
    student = notebook(
        """
        import torch.nn.functional as F

        def cosine_score(query, keys):
            return F.normalize(keys, dim=-1) @ F.normalize(query, dim=-1)

        def cosine_score_ready_made(query, keys):
            return F.cosine_similarity(keys, query[None, :], dim=-1)
        """
    )
    query, keys = torch.tensor([1.0, 0.0]), torch.tensor([[3.0, 4.0], [0.0, 2.0], [-1.0, 0.0]])
    got = run(student["cosine_score"], query, keys)
    np.testing.assert_allclose(got.numpy(), [0.6, 0.0, -1.0], atol=1e-7)  # 3/5, 0, -1
    ready_made = student["cosine_score_ready_made"]
    ready_made.__name__ = "cosine_score"
    # F.cosine_similarity is torch.cosine_similarity, under either name
    used = r"torch\.(nn\.functional\.)?cosine_similarity"
    with pytest.raises(LibraryCallError, match=rf"^cosine_score uses {used}, the ready-made"):
        run(ready_made, query, keys)


# --- the library's version is caught, however it is reached -------------------------------

ALIASED = {
    "from attn_course.functional.softmax import softmax as s": (
        "return s(x, axis)",
        r"attn_course\.functional\.softmax\.softmax",
    ),
    "import attn_course.functional as af": (
        "return af.softmax.softmax(x, axis)",
        r"attn_course\.functional\.softmax\.softmax",
    ),
    "import torch.nn.functional as F": (
        "return F.softmax(x, dim=axis)",
        r"torch\.nn\.functional\.softmax",
    ),
    # a builtin under another name: the trap replaces torch.softmax, not this name, so only
    # the scan of the student's code can see it
    "from torch import softmax as sm": ("return sm(x, axis)", r"torch\.softmax"),
    "import scipy.special as sp": ("return sp.softmax(x, axis=axis)", r"scipy\.special\.softmax"),
}


@pytest.mark.parametrize("imported", ALIASED)
def test_an_aliased_import_is_caught(imported):
    body, used = ALIASED[imported]
    student = notebook(f"{imported}\ndef softmax(x, axis=-1):\n    {body}\n")
    with pytest.raises(LibraryCallError, match=rf"^softmax uses {used}, the ready-made version"):
        run(student["softmax"], torch.tensor(LOGITS))


HELPERS = {
    "the library's function": (
        "from attn_course.functional import softmax as lib",
        "lib.softmax(scores, axis)",
        r"attn_course\.functional\.softmax\.softmax",
    ),
    # seen only by the scan, which follows the notebook's own functions
    "a builtin under another name": (
        "from torch import softmax as sm",
        "sm(scores, axis)",
        r"torch\.softmax",
    ),
}


@pytest.mark.parametrize("calls", HELPERS)
def test_a_helper_in_the_notebook_that_calls_the_library_is_caught(calls):
    imported, call, used = HELPERS[calls]
    student = notebook(
        f"""
        {imported}

        def normalise(scores, axis):
            return {call}

        def attention_weights(scores, axis=-1):
            return normalise(scores, axis)
        """
    )
    with pytest.raises(LibraryCallError, match=rf"^attention_weights uses {used}, the ready-made"):
        run(student["attention_weights"], torch.tensor(LOGITS))


def test_a_lambda_inside_the_function_is_scanned_too():
    student = notebook(
        """
        from torch import softmax as sm

        def softmax(x, axis=-1):
            rows = lambda v: sm(v, axis)
            return rows(x)
        """
    )
    with pytest.raises(LibraryCallError, match=r"^softmax uses torch\.softmax"):
        run(student["softmax"], torch.tensor(LOGITS))


# Calls the scan of the student's code cannot see; the trap catches them as they happen.
HIDDEN = {
    "the library found by name": (
        """
        import importlib

        def softmax(x, axis=-1):
            module = importlib.import_module("attn_course.functional." + "softmax")
            return getattr(module, "soft" + "max")(x, axis)
        """,
        r"attn_course\.functional\.softmax\.softmax",
    ),
    "a tensor's own method": (
        """
        def softmax(x, axis=-1):
            return x.softmax(axis)
        """,
        r"torch\.Tensor\.softmax",
    ),
    "a builtin found by name": (
        """
        import torch

        def softmax(x, axis=-1):
            return getattr(torch, "soft" + "max")(x, axis)
        """,
        r"torch\.softmax",
    ),
}


@pytest.mark.parametrize("how", HIDDEN)
def test_a_call_hidden_from_the_scan_is_trapped_when_made(how):
    source, used = HIDDEN[how]
    student = notebook(source)
    with pytest.raises(LibraryCallError, match=rf"^softmax uses {used}, the ready-made version"):
        run(student["softmax"], torch.tensor(LOGITS))


def test_a_helper_from_another_module_is_trapped_when_called():
    """The scan follows only the notebook's own functions; a helper imported from elsewhere
    is caught by the trap, when it calls the library."""
    helpers = notebook(
        """
        import torch.nn.functional as F

        def normalise(scores, axis):
            return F.softmax(scores, dim=axis)
        """
    )
    helpers["normalise"].__module__ = "helpers"  # as if imported from a helpers.py
    student = notebook("def softmax(x, axis=-1):\n    return normalise(x, axis)\n")
    student["normalise"] = helpers["normalise"]
    with pytest.raises(LibraryCallError, match=r"softmax uses torch\.nn\.functional\.softmax"):
        run(student["softmax"], torch.tensor(LOGITS))


# --- everything is put back, however the call ends ----------------------------------------


def trapped_objects() -> dict[str, tuple]:
    """The forbidden functions of a softmax exercise, as their owners hold them now, with
    their code objects."""
    owners = {
        "attn_course.functional.softmax.softmax": (library, "softmax"),
        "attn_course.functional.softmax.masked_softmax": (library, "masked_softmax"),
        "torch.softmax": (torch, "softmax"),
        "torch.special.softmax": (torch.special, "softmax"),
        "torch.Tensor.softmax": (torch.Tensor, "softmax"),
        "torch.nn.functional.softmax": (F, "softmax"),
    }
    return {
        name: (getattr(owner, attr), getattr(getattr(owner, attr), "__code__", None))
        for name, (owner, attr) in owners.items()
    }


ENDINGS = {
    "the student's own error": (
        "def softmax(x, axis=-1):\n    raise ValueError('my bug')\n",
        CallError,
    ),
    "a trapped call": (
        "import importlib\n"
        "def softmax(x, axis=-1):\n"
        "    importlib.import_module('torch').softmax(x, axis)\n",
        LibraryCallError,
    ),
    "a caught trapped call, then an error": (
        "def softmax(x, axis=-1):\n"
        "    try:\n"
        "        x.softmax(axis)\n"
        "    except NotImplementedError:\n"
        "        pass\n"
        "    return 1 / 0\n",
        CallError,
    ),
    "the grader's timeout": (
        "def softmax(x, axis=-1):\n    raise KeyboardInterrupt\n",
        KeyboardInterrupt,
    ),
}


@pytest.mark.parametrize("ending", ENDINGS)
def test_everything_trapped_is_restored(ending):
    source, raised = ENDINGS[ending]
    before = trapped_objects()
    with pytest.raises(raised):
        run(notebook(source)["softmax"], torch.tensor(LOGITS))
    assert trapped_objects() == before
    # and they compute again
    np.testing.assert_allclose(library.softmax(LOGITS), PROBS)
    np.testing.assert_allclose(torch.softmax(torch.tensor(LOGITS), -1).numpy(), PROBS)
    np.testing.assert_allclose(torch.tensor(LOGITS).softmax(-1).numpy(), PROBS)
    np.testing.assert_allclose(F.softmax(torch.tensor(LOGITS), dim=-1).numpy(), PROBS)


def test_the_trap_is_set_only_while_the_function_runs():
    student = notebook(
        """
        import importlib
        import numpy as np

        seen = {}

        def softmax(x, axis=-1):
            torch = importlib.import_module("torch")
            for name, arg in (("attn_course.functional.softmax", x), ("torch", torch.tensor(x))):
                try:
                    getattr(importlib.import_module(name), "soft" + "max")(arg, axis)
                    seen[name] = "ran"
                except NotImplementedError as err:  # the student hides the trap's error
                    seen[name] = str(err)
            e = np.exp(x - x.max(axis=axis, keepdims=True))
            return e / e.sum(axis=axis, keepdims=True)
        """
    )
    np.testing.assert_allclose(run(student["softmax"], LOGITS), PROBS)
    assert student["seen"] == {
        "attn_course.functional.softmax": "attn_course.checks: forbidden call to "
        "attn_course.functional.softmax.softmax",
        "torch": "attn_course.checks: forbidden call to torch.softmax",
    }
    np.testing.assert_allclose(library.softmax(LOGITS), PROBS)
    np.testing.assert_allclose(torch.softmax(torch.tensor(LOGITS), -1).numpy(), PROBS)
