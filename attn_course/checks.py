"""Checks for the test cells of the graded notebooks.

A test cell calls the student's function through :func:`run` and compares the
result with an independent reference through :func:`check_array`. Every
failure is an ``AssertionError`` whose message says in words what is wrong,
so the student reads a sentence, not a wall of NumPy internals: a wrong value,
and also a function that raises (the call, the input shapes and the hint, and the
function of the notebook the error came from when it is a helper the graded function
calls). The frames of this module are hidden from the traceback Jupyter shows
(``__tracebackhide__``), so it starts in the student's code.

Two rules make grading fair both ways:

- *A correct answer never loses points for a harmless difference.* Results
  may be NumPy arrays or torch tensors, float32 or float64; a loop is as good
  as a vectorised form; warnings and anything the student prints to stderr
  during the call are swallowed (nbgrader scores a test cell 0 if anything
  reaches stderr).
- *An answer that calls the library's own version gets no points for that
  part.* While the student's function runs, every function of
  ``attn_course`` and the torch/SciPy equivalent of the function being
  graded raise :class:`LibraryCallError`; the student's code is also scanned
  for references to them, so ``from torch import softmax as sm`` is caught
  too.
"""

from __future__ import annotations

import contextlib
import dis
import inspect
import io
import sys
import types
import warnings

import numpy as np

from attn_course.messages import gettext_ as _
from attn_course.messages import text
from attn_course.tracebacks import call_failed, enclosing_check, origin, trimmed

__all__ = [
    "CallError",
    "LibraryCallError",
    "check_array",
    "check_rows_sum_to_one",
    "check_shape",
    "run",
    "run_unchanged",
    "to_numpy",
]

# The library-or-framework versions of each graded function, by the function's name.
# Dotted paths; a module that is not imported is skipped (the student cannot have used it
# without importing it, and the static scan below still sees the reference).
_SOFTMAXES = (
    "torch.softmax",
    "torch.nn.functional.softmax",
    "torch.special.softmax",
    "torch.Tensor.softmax",
    "scipy.special.softmax",
)
_LAYER_NORMS = (
    "torch.nn.functional.layer_norm",
    "torch.layer_norm",
    "torch.native_layer_norm",
    "torch.nn.LayerNorm.forward",
)
EQUIVALENTS: dict[str, tuple[str, ...]] = {
    "softmax": _SOFTMAXES,
    "masked_softmax": _SOFTMAXES,
    "cosine_score": (
        "torch.nn.functional.cosine_similarity",
        "torch.cosine_similarity",
        "scipy.spatial.distance.cosine",
        "scipy.spatial.distance.cdist",
    ),
    "attention": (
        "torch.nn.functional.scaled_dot_product_attention",
        "torch.nn.functional.multi_head_attention_forward",
    ),
    "multi_head_attention": (
        "torch.nn.functional.scaled_dot_product_attention",
        "torch.nn.functional.multi_head_attention_forward",
        "torch.nn.MultiheadAttention.forward",
    ),
    "attention_weights": _SOFTMAXES,
    "attention_step": _SOFTMAXES + ("torch.nn.functional.scaled_dot_product_attention",),
    "self_attention": ("torch.nn.functional.scaled_dot_product_attention",),
    "projected_self_attention": (
        "torch.nn.functional.scaled_dot_product_attention",
        "torch.nn.functional.multi_head_attention_forward",
        "torch.nn.MultiheadAttention.forward",
    ),
    "rnn_forward": ("torch.nn.RNN.forward", "torch.rnn_tanh"),
    "layer_norm": _LAYER_NORMS,
    "feed_forward": ("torch.nn.TransformerEncoderLayer._ff_block",),
    "encoder_layer": _LAYER_NORMS
    + (
        "torch.nn.TransformerEncoderLayer.forward",
        "torch.nn.TransformerEncoder.forward",
        "torch._transformer_encoder_layer_fwd",
        "torch.nn.MultiheadAttention.forward",
        "torch.nn.functional.multi_head_attention_forward",
        "torch.nn.functional.scaled_dot_product_attention",
    ),
}
# Modules of this package whose functions are never forbidden: the checks themselves.
_ALLOWED_MODULES = {"attn_course.checks", "attn_course.grading", "attn_course.messages"}
_SENTINEL = "attn_course.checks: forbidden call to "


class LibraryCallError(AssertionError):
    """The student's function used the library's own version of what it should implement."""


class CallError(AssertionError):
    """The student's function raised: the message names the call, the inputs and the hint."""


def _message(name: str, used: str) -> str:
    return _(
        "{name} uses {used}, the ready-made version of what this exercise asks you to "
        "write. This part gets no points that way: implement {name} yourself with basic "
        "NumPy operations (np.exp, np.sum, @, ...)."
    ).format(name=name, used=used)


# --- finding the forbidden objects ---------------------------------------------------------


def _resolve(path: str):
    """The object at a dotted path, or None if its module is not imported (or it does not exist)."""
    parts = path.split(".")
    for i in range(len(parts), 0, -1):
        mod = sys.modules.get(".".join(parts[:i]))
        if mod is not None:
            obj = mod
            try:
                for attr in parts[i:]:
                    obj = getattr(obj, attr)
            except AttributeError:
                return None
            return obj
    return None


def _library_functions():
    """(qualified name, function) for every function defined in an imported attn_course module."""
    for modname, mod in list(sys.modules.items()):
        if mod is None or not modname.startswith("attn_course"):
            continue
        if any(modname == m or modname.startswith(m + ".") for m in _ALLOWED_MODULES):
            continue
        for attr, obj in list(vars(mod).items()):
            candidates = [(attr, obj)]
            if isinstance(obj, type) and obj.__module__ == modname:
                candidates += [(f"{attr}.{k}", v) for k, v in vars(obj).items()]
            for name, fn in candidates:
                if isinstance(fn, types.FunctionType) and fn.__module__ == modname:
                    yield f"{modname}.{name}", fn


def _forbidden(name: str) -> dict[str, object]:
    """Qualified name -> object, for everything ``name``'s implementation may not call."""
    found = {qual: fn for qual, fn in _library_functions()}
    for path in EQUIVALENTS.get(name, ()):
        obj = _resolve(path)
        if obj is not None:
            found[path] = obj
    return found


# --- static scan: does the student's code refer to a forbidden object? ---------------------


def _referenced_objects(fn, seen: set[int]):
    """Objects reached by the global names and attribute chains in ``fn``'s code (recursively
    into nested code and into other functions of the student's own notebook)."""
    if id(fn) in seen or not isinstance(fn, types.FunctionType):
        return
    seen.add(id(fn))
    glb = fn.__globals__
    builtins = glb.get("__builtins__", {})
    codes = [fn.__code__]
    while codes:
        code = codes.pop()
        codes += [c for c in code.co_consts if isinstance(c, types.CodeType)]
        obj = None
        for ins in dis.get_instructions(code):
            if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME"):
                name = ins.argval
                obj = glb.get(name, getattr(builtins, name, None))
                if isinstance(obj, types.FunctionType) and obj.__module__ == fn.__module__:
                    yield from _referenced_objects(obj, seen)  # a helper the student wrote
                yield obj
            elif ins.opname in ("LOAD_ATTR", "LOAD_METHOD") and obj is not None:
                obj = getattr(obj, ins.argval, None)
                yield obj
            else:
                obj = None


def _scan(fn, forbidden: dict[str, object]) -> str | None:
    by_id = {id(obj): qual for qual, obj in forbidden.items()}
    for obj in _referenced_objects(fn, set()):
        if obj is not None and id(obj) in by_id:
            return by_id[id(obj)]
    return None


# --- runtime trap -------------------------------------------------------------------------


def _stub_code(qualname: str) -> types.CodeType:
    """A code object that raises, with no free variables (so it fits any plain function)."""
    src = f"def stub(*args, **kwargs):\n    raise NotImplementedError({_SENTINEL + qualname!r})\n"
    namespace: dict = {}
    exec(compile(src, "<attn_course.checks>", "exec"), namespace)
    return namespace["stub"].__code__


@contextlib.contextmanager
def _trapped(forbidden: dict[str, object]):
    """While active, every forbidden object raises when called."""
    undo = []
    try:
        for qual, obj in forbidden.items():
            if isinstance(obj, types.FunctionType) and not obj.__code__.co_freevars:
                undo.append((obj, "__code__", obj.__code__))
                obj.__code__ = _stub_code(qual)
            else:  # builtins and C functions: replace the attribute on their owner
                owner_path, _, attr = qual.rpartition(".")
                owner = _resolve(owner_path) if owner_path else None
                if owner is None or getattr(owner, attr, None) is not obj:
                    continue
                undo.append((owner, attr, obj))
                raiser = _make_raiser(qual)
                setattr(owner, attr, raiser)
        yield
    finally:
        for target, attr, original in reversed(undo):
            setattr(target, attr, original)


def _make_raiser(qual: str):
    def raiser(*args, **kwargs):
        raise NotImplementedError(_SENTINEL + qual)

    return raiser


def run(fn, *args, **kwargs):
    """Call a student's function the fair way and return its result.

    - Warnings and stderr output during the call are swallowed.
    - If the function (or a helper it calls) uses the library's own version of
      ``fn.__name__`` — any ``attn_course`` function, or the torch/SciPy
      equivalent — a :class:`LibraryCallError` explains why there are no points.
    - If it raises, a :class:`CallError` (chained to the student's error, so the
      traceback still shows the failing line) says in words which call failed, with
      which inputs (shapes, by the student's parameter names), and the ``hint`` of
      the check this call is an argument of. An error raised in another function of
      the notebook (an unwritten ``layer_norm`` that ``encoder_layer`` calls) names
      that function, and a helper without ``return`` is named when its None fails.
    """
    if not callable(fn):
        raise AssertionError(
            _("expected a function, but found {type}: {value}").format(
                type=type(fn).__name__, value=repr(fn)
            )
        )
    __tracebackhide__ = True  # IPython and pytest show the student's frames, not these
    name = getattr(fn, "__name__", None) or _("your function")
    forbidden = _forbidden(name)
    used = _scan(fn, forbidden)
    if used is not None:
        raise LibraryCallError(_message(name, used))
    try:
        with (
            _trapped(forbidden),
            warnings.catch_warnings(),
            contextlib.redirect_stderr(io.StringIO()),
            np.errstate(all="ignore"),
        ):
            warnings.simplefilter("ignore")
            return fn(*args, **kwargs)
    except MemoryError:
        raise  # the kernel is out of memory, not the code wrong: the grader handles it
    except Exception as err:  # KeyboardInterrupt (the grader's timeout) passes through
        msg = str(err)
        if isinstance(err, NotImplementedError) and msg.startswith(_SENTINEL):
            raise LibraryCallError(_message(name, msg[len(_SENTINEL) :])) from None
        what, hint = enclosing_check(sys._getframe(1))
        message = call_failed(fn, args, kwargs, err, what, hint, origin(fn, err))
        # Your function raised (the traceback above): the message below says where and why.
        raise CallError(message) from trimmed(err, __file__)


# --- comparing results --------------------------------------------------------------------


def to_numpy(value, what: str = "your function") -> np.ndarray:
    """The result as a float64 NumPy array; a clear message if it is not an array at all."""
    __tracebackhide__ = True
    words = text(what) if what != "your function" else _("your function")
    if value is None:
        raise AssertionError(
            _("{what} returned None: did you forget the `return` statement?").format(what=words)
        )
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, tuple):
        raise AssertionError(
            _("{what} returned a tuple of {n} items; it should return one array").format(
                what=words, n=len(value)
            )
        )
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise AssertionError(
            _("{what} returned a {type}, which is not an array of numbers").format(
                what=words, type=type(value).__name__
            )
        ) from err
    return array


def check_shape(what: str, got, expected_shape: tuple[int, ...], hint: str = "") -> np.ndarray:
    """The result has the expected shape; returns it as a NumPy array."""
    __tracebackhide__ = True
    array = to_numpy(got, what)
    expected_shape = tuple(expected_shape)
    if array.shape != expected_shape:
        raise AssertionError(
            _("{what} has shape {got}, but it should have shape {expected}. {hint}").format(
                what=text(what), got=array.shape, expected=expected_shape, hint=text(hint)
            )
        ).with_traceback(None)
    return array


def check_array(
    what: str,
    got,
    expected,
    *,
    atol: float = 1e-6,
    rtol: float = 1e-4,
    hint: str = "",
) -> None:
    """Shape first, then finiteness, then values, each with its own message.

    The default tolerance accepts float32 arithmetic (about 7 significant digits).
    """
    __tracebackhide__ = True
    expected = np.asarray(expected, dtype=np.float64)
    array = check_shape(what, got, expected.shape, hint)
    bad = ~np.isfinite(array) & np.isfinite(expected)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise AssertionError(
            _(
                "{what} contains {value} at index {index}, where {expected} was expected. "
                "NaN or inf usually means an overflow or a division by zero. {hint}"
            ).format(
                what=text(what),
                value=array[index],
                index=index,
                expected=f"{expected[index]:.6g}",
                hint=text(hint),
            )
        )
    close = np.isclose(array, expected, atol=atol, rtol=rtol, equal_nan=True)
    if not close.all():
        diff = np.where(close, 0.0, np.abs(array - expected))
        index = tuple(int(i) for i in np.unravel_index(np.nanargmax(diff), diff.shape))
        raise AssertionError(
            _(
                "{what} is wrong at {wrong} of {size} entries; e.g. at index {index} you "
                "returned {got}, but it should be {expected}. {hint}"
            ).format(
                what=text(what),
                wrong=int((~close).sum()),
                size=close.size,
                index=index,
                got=f"{array[index]:.6g}",
                expected=f"{expected[index]:.6g}",
                hint=text(hint),
            )
        )


def check_rows_sum_to_one(what: str, got, axis: int = -1, hint: str = "") -> None:
    """A probability distribution along ``axis``: non-negative and summing to 1."""
    __tracebackhide__ = True
    array = to_numpy(got, what)
    if (array < -1e-12).any():
        raise AssertionError(
            _("{what} has negative entries, so it is not a distribution. {hint}").format(
                what=text(what), hint=text(hint)
            )
        )
    sums = array.sum(axis=axis)
    if not np.allclose(sums, 1.0, atol=1e-5):
        raise AssertionError(
            _("{what} should sum to 1 along axis {axis}, but the sums are {sums}. {hint}").format(
                what=text(what), axis=axis, sums=np.round(sums, 4), hint=text(hint)
            )
        )


# --- inputs left as they were -------------------------------------------------------------


def _arrays(value, where: str):
    """Every NumPy array in ``value`` (also inside dicts, lists and tuples), with its place."""
    if isinstance(value, np.ndarray):
        yield where, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _arrays(item, f"{where}[{key!r}]")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _arrays(item, f"{where}[{index}]")


def run_unchanged(fn, *args, **kwargs):
    """:func:`run`, then check that ``fn`` left every array it was given as it was.

    A function that writes into its inputs (``x -= x.max()``, ``e[~mask] = -inf``) returns
    the right values and silently changes the caller's scores, states or weights.
    """
    __tracebackhide__ = True
    name = getattr(fn, "__name__", None) or _("your function")
    try:
        given = inspect.signature(fn).bind(*args, **kwargs).arguments
    except (TypeError, ValueError):  # a wrong signature: run() below says so
        given = {**{_("argument {n}").format(n=i + 1): a for i, a in enumerate(args)}, **kwargs}
    before = [(w, a, a.copy()) for arg, v in given.items() for w, a in _arrays(v, arg)]
    result = run(fn, *args, **kwargs)
    for where, array, copy in before:
        if array.shape != copy.shape or not np.array_equal(array, copy, equal_nan=True):
            raise AssertionError(
                _(
                    "{name} changed its input `{where}` in place; the caller still needs it as "
                    "it was. Write the result into a new array (z = x - m, not x -= m; "
                    "np.where(mask, e, -np.inf), not e[~mask] = -np.inf), or work on a copy."
                ).format(name=name, where=where)
            )
    return result
