"""Reading a student's error for :mod:`attn_course.checks`: which function of the notebook
raised it (a helper, not only the graded function), whether a helper returned None, the
traceback cut to the student's own code, and the check around a ``run(...)`` call whose hint
the message repeats; and that message itself (:func:`call_failed`), in the messages' language.
A student's kernel imports it with ``attn_course.checks``; like that module it needs NumPy
only."""

from __future__ import annotations

import ast
import dis
import inspect
import types
from typing import NamedTuple

import numpy as np

from attn_course.messages import N_, text
from attn_course.messages import gettext_ as _

__all__ = ["Origin", "call_failed", "enclosing_check", "origin", "trimmed"]


class Origin(NamedTuple):
    """The notebook function an error was raised in, if not the graded one itself: its name,
    the notebook functions in between, and a helper that returned None to it."""

    raised_in: str | None = None
    through: tuple[str, ...] = ()
    returned_none: str | None = None


def _named(code: types.CodeType) -> bool:
    return not code.co_name.startswith("<")  # not a <listcomp>, <lambda>, <module>, ...


def _returns_nothing(fn) -> bool:
    """Whether every ``return`` of ``fn`` returns None (a body without a ``return`` statement
    ends in an implicit ``return None``); a function that only raises does not count."""
    code = getattr(fn, "__code__", None)
    if code is None or code.co_flags & (inspect.CO_GENERATOR | inspect.CO_COROUTINE):
        return False
    ins = list(dis.get_instructions(code))
    returns = [i for i, x in enumerate(ins) if x.opname in ("RETURN_VALUE", "RETURN_CONST")]
    for i in returns:
        if ins[i].opname == "RETURN_CONST":
            value_is_none = ins[i].argval is None
        else:
            value_is_none = (
                i > 0 and ins[i - 1].opname == "LOAD_CONST" and ins[i - 1].argval is None
            )
        if not value_is_none:
            return False
    return bool(returns)


def _none_from(frame) -> str | None:
    """A function of the notebook that ``frame``'s code calls and that never returns a value:
    where the None came from when ``frame`` failed on one."""
    glb = frame.f_globals
    for ins in dis.get_instructions(frame.f_code):
        if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME"):
            obj = glb.get(ins.argval)
            if (
                isinstance(obj, types.FunctionType)
                and obj.__globals__ is glb
                and obj.__code__ is not frame.f_code
                and _returns_nothing(obj)
            ):
                return obj.__name__
    return None


def origin(fn, err: Exception) -> Origin:
    """The innermost frame of ``err``'s traceback defined in the student's notebook (it shares
    ``fn``'s globals) names the function the error came from: a bug in ``feed_forward`` or an
    unwritten ``layer_norm`` is not ``encoder_layer``'s, though ``encoder_layer`` was called."""
    glb = getattr(fn, "__globals__", None)
    if glb is None:
        return Origin()
    frames = []
    tb = err.__traceback__
    while tb is not None:
        if tb.tb_frame.f_globals is glb and _named(tb.tb_frame.f_code):
            frames.append(tb.tb_frame)
        tb = tb.tb_next
    if not frames:  # the call itself failed (a wrong signature): nothing ran in the notebook
        return Origin()
    innermost = frames[-1]
    none = _none_from(innermost) if "NoneType" in str(err) else None
    if innermost.f_code is getattr(fn, "__code__", None):
        return Origin(returned_none=none)
    names = [f.f_code.co_name for f in frames]
    through = tuple(dict.fromkeys(n for n in names[1:-1] if n != names[-1]))
    return Origin(names[-1], through, none)


def trimmed(err: Exception, module_file: str) -> Exception:
    """``err`` with the frames of ``module_file`` (the checks') cut from the front of its
    traceback, so that the traceback under a test cell starts in the student's code."""
    tb = err.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == module_file:
        tb = tb.tb_next
    return err.with_traceback(tb) if tb is not None else err


_SAFE_NODES = (
    ast.Constant,
    ast.JoinedStr,
    ast.FormattedValue,
    ast.Name,
    ast.Attribute,
    ast.BinOp,
    ast.Add,
    ast.Load,
    ast.Tuple,
    ast.Subscript,
)


def enclosing_check(frame) -> tuple[str | None, str]:
    """The description and ``hint`` of the check that encloses this ``run(...)`` call, as in
    ``check_array("dot_score(q, K)", run(dot_score, q, K), ..., hint="...")``.

    Python evaluates ``run(...)`` before the check is called, so the hint is read from the
    test cell's source: ``executing`` finds the call node that is running in the caller's
    frame (as IPython's tracebacks do), and the enclosing call's arguments are evaluated if
    they are plain strings, names and f-strings (no calls, so nothing runs twice)."""
    try:
        import executing

        node = executing.Source.executing(frame).node
    except Exception:  # noqa: BLE001  (no source to read: the message goes without the hint)
        return None, ""
    check = getattr(node, "parent", None)
    if not isinstance(check, ast.Call) or node not in check.args:
        return None, ""

    def value(expr):
        if expr is None or not all(isinstance(n, _SAFE_NODES) for n in ast.walk(expr)):
            return None
        try:
            code = compile(ast.Expression(expr), "<test cell>", "eval")
            result = eval(code, frame.f_globals, frame.f_locals)  # noqa: S307  (checked above)
        except Exception:  # noqa: BLE001
            return None
        return result if isinstance(result, str) else None

    what = value(check.args[0]) if check.args and check.args[0] is not node else None
    hint = next((value(k.value) for k in check.keywords if k.arg == "hint"), None)
    return what, hint or ""


# --- the message of a call that raised ------------------------------------------------------

# numpy's words for the two most common mistakes, and what they mean
_PLAIN_WORDS = {  # N_: the words are msgids, translated where they are used
    "mismatch in its core dimension": N_(
        "in a @ b, the last axis of a must have the size of the second-to-last axis of b"
    ),
    "could not be broadcast together": N_(
        "elementwise operations need shapes whose sizes, compared from the right, are equal or 1"
    ),
}


def _describe(value) -> str:
    shape = getattr(value, "shape", None)
    if shape is not None and not isinstance(value, np.generic):
        return _("of shape {shape}").format(shape=tuple(int(n) for n in shape))
    if callable(value):
        return f"= {getattr(value, '__name__', type(value).__name__)}"
    if value is None or isinstance(value, (bool, int, float, str, np.generic)):
        return f"= {value!r}"
    return _("of type {type}").format(type=type(value).__name__)


def _inputs(fn, args, kwargs) -> str:
    """'query of shape (1, 2) and keys of shape (3, 2)', named by the student's signature."""
    try:
        bound = inspect.signature(fn).bind(*args, **kwargs).arguments.items()
    except (TypeError, ValueError):  # the call itself does not fit the signature
        bound = [(_("argument {n}").format(n=i + 1), a) for i, a in enumerate(args)]
        bound += list(kwargs.items())
    parts = [f"{k} {_describe(v)}" for k, v in bound]
    if len(parts) > 1:
        return _("{items} and {last}").format(items=_(", ").join(parts[:-1]), last=parts[-1])
    return parts[0] if parts else _("no arguments")


def call_failed(
    fn, args, kwargs, err: Exception, what: str | None, hint: str, where: Origin | None = None
) -> str:
    name = getattr(fn, "__name__", None) or _("your function")
    error = " ".join(str(err).split()) or _("(no message)")
    where = where or Origin()
    via = (
        _(" through {functions}").format(functions=_(", ").join(where.through))
        if where.through
        else ""
    )
    unwritten = isinstance(err, NotImplementedError) and not str(err)
    words = dict(name=name, helper=where.raised_in, via=via, error=error)
    if unwritten and where.raised_in:
        said = _(
            "{name} calls {helper}{via}, which is not written yet: it still raises "
            "NotImplementedError"
        ).format(**words)
    elif unwritten:
        said = _("{name} is not written yet: it still raises NotImplementedError").format(**words)
    else:
        if where.raised_in:
            said = _("{type} raised in {helper} (called by {name}{via}): {error}").format(
                type=type(err).__name__, **words
            )
        else:
            said = _("{name} raised {type}: {error}").format(type=type(err).__name__, **words)
        plain = [w for key, w in _PLAIN_WORDS.items() if key in error]
        if plain:
            said += _(" ({words})").format(words=_(plain[0]))
        if where.returned_none:
            said += _(
                " (the None is what {helper} returned: does {helper} lack a `return`?)"
            ).format(helper=where.returned_none)
    if where.raised_in or where.returned_none:
        called = _("{name} was called with {inputs}.")
    else:
        called = _("it was called with {inputs}.")
    called = called.format(name=name, inputs=_inputs(fn, args, kwargs))
    if what:
        message = _("{what} could not be computed: {said}; {called} {hint}")
    else:
        message = _("{said}; {called} {hint}")
    return message.format(what=text(what), said=said, called=called, hint=text(hint)).strip()
