"""Inside the grading kernel: undo monkeypatching before every cell runs.

Loaded by the kernel at start-up (before any student cell) through
``--IPKernelApp.exec_lines``. It

1. takes a snapshot of the functions, classes and sub-modules of the modules
   the tests rely on -- ``numpy``, ``torch``, ``scipy.special``, ``math``,
   ``attn_course`` (including ``attn_course.checks``) and a few builtins --
   at the moment each is imported (an import hook), so the snapshot is taken
   before any student code can touch the module;
2. before every cell (IPython's ``pre_run_cell`` event) puts back every name
   the notebook rebound, every function whose ``__code__`` or defaults were
   swapped, every ``torch.Tensor`` method replaced, and every ``sys.modules``
   entry replaced by a fake; and records what it undid;
3. answers the grader's closing integrity question (:func:`report`), which the
   grader sends out of band after the last cell: what was undone, and whether
   the guard was still installed.

What it does not stop: code that deliberately digs into the interpreter
(``ctypes``, ``gc.get_referrers``) to reach the snapshot itself. The grader
treats a missing or inconsistent report as tampering (score withheld, flagged
for manual review), so removing the guard does not pay either.
"""

import builtins
import importlib.abc
import json
import sys
import types

PROTECTED_PREFIXES = ("numpy", "torch", "scipy.special", "math", "attn_course")
PROTECTED_BUILTINS = (
    "abs",
    "all",
    "any",
    "bool",
    "float",
    "getattr",
    "hasattr",
    "int",
    "isinstance",
    "issubclass",
    "len",
    "max",
    "min",
    "round",
    "sum",
    "type",
    "__import__",
    "callable",
    "zip",
    "range",
    "tuple",
    "list",
    "dict",
    "AssertionError",
    "Exception",
    "ValueError",
)
TOKEN_ATTR = "_attn_course_guard"
_SKIP_TORCH = (
    "torch._dynamo",
    "torch._inductor",
    "torch.fx",
    "torch.onnx",
    "torch._functorch",
    "torch.distributed",
    "torch.testing._internal",
    "torch.utils",
    "torch._export",
    "torch.export",
    "torch.ao",
    "torch.jit",
    "torch.package",
    "torch.cuda",
    "torch.xpu",
    "torch.mps",
    "torch.backends",
    "torch._library",
    "torch._higher_order_ops",
    "torch._subclasses",
    "torch._prims",
    "torch._refs",
    "torch._decomp",
)


def _protected(name):
    if not any(name == p or name.startswith(p + ".") for p in PROTECTED_PREFIXES):
        return False
    return not name.startswith(_SKIP_TORCH)


def _kind(value):
    return isinstance(
        value,
        (
            types.FunctionType,
            types.BuiltinFunctionType,
            types.ModuleType,
            type,
            types.MethodType,
            staticmethod,
            classmethod,
            property,
        ),
    ) or (callable(value) and type(value).__module__.startswith(("numpy", "torch")))


class _Guard:
    def __init__(self):
        self.modules = {}  # name -> (module, {attr: value})
        self.functions = {}  # id -> (function, code, defaults, kwdefaults, qualified name)
        self.classes = {}  # qualified name -> (class, {attr: value})
        self.undone = []
        self.cells = 0

    # --- snapshots --------------------------------------------------------------------
    def snapshot(self, name, module):
        if name in self.modules or not isinstance(module, types.ModuleType):
            return
        values = {}
        try:
            items = list(vars(module).items())
        except TypeError:
            return
        for attr, value in items:
            if not _kind(value):
                continue
            values[attr] = value
            if isinstance(value, types.FunctionType) and id(value) not in self.functions:
                self.functions[id(value)] = (
                    value,
                    value.__code__,
                    value.__defaults__,
                    value.__kwdefaults__,
                    f"{name}.{attr}",
                )
        self.modules[name] = (module, values)
        if name == "torch" and hasattr(module, "Tensor"):
            self._snapshot_class("torch.Tensor", module.Tensor)

    def _snapshot_class(self, qual, cls):
        values = {k: v for k, v in vars(cls).items() if _kind(v) or isinstance(v, type(len))}
        self.classes[qual] = (cls, values)

    def snapshot_loaded(self):
        for name, module in list(sys.modules.items()):
            if module is not None and _protected(name):
                self.snapshot(name, module)

    # --- restoring --------------------------------------------------------------------
    def restore(self):
        undone = []
        for name, (module, values) in list(self.modules.items()):
            if sys.modules.get(name) is not module and name in sys.modules:
                sys.modules[name] = module
                undone.append(f"sys.modules[{name!r}]")
            d = vars(module)
            for attr, value in values.items():
                if d.get(attr, _MISSING) is not value:
                    d[attr] = value
                    undone.append(f"{name}.{attr}")
        for qual, (cls, values) in self.classes.items():
            d = vars(cls)
            for attr, value in values.items():
                if d.get(attr, _MISSING) is not value:
                    setattr(cls, attr, value)
                    undone.append(f"{qual}.{attr}")
        for fn, code, defaults, kwdefaults, qual in self.functions.values():
            if fn.__code__ is not code:
                fn.__code__ = code
                undone.append(f"{qual}.__code__")
            if fn.__defaults__ is not defaults:
                fn.__defaults__ = defaults
                undone.append(f"{qual}.__defaults__")
            if fn.__kwdefaults__ is not kwdefaults:
                fn.__kwdefaults__ = kwdefaults
                undone.append(f"{qual}.__kwdefaults__")
        for attr, value in _BUILTINS.items():
            if getattr(builtins, attr, _MISSING) is not value:
                setattr(builtins, attr, value)
                undone.append(f"builtins.{attr}")
        for item in undone:
            if item not in self.undone:
                self.undone.append(item)

    def pre_run_cell(self, *args, **kwargs):
        self.cells += 1
        self.snapshot_loaded()  # modules imported by the grader itself, never by students
        self.restore()


class _SnapshotOnImport(importlib.abc.MetaPathFinder):
    """Wraps the loader of every protected module so the snapshot is taken as soon as the
    module has executed, before the importing (student) code continues."""

    def find_spec(self, fullname, path=None, target=None):
        if not _protected(fullname):
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _SnapshotLoader(spec.loader, fullname)
        return spec


class _SnapshotLoader(importlib.abc.Loader):
    """Delegates to the real loader; snapshots the module right after it has executed."""

    def __init__(self, loader, fullname):
        self._loader = loader
        self._fullname = fullname

    def __getattr__(self, name):
        return getattr(self._loader, name)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        # some modules replace themselves in sys.modules while executing (torch._VF does)
        _GUARD.snapshot(self._fullname, sys.modules.get(self._fullname, module))


_MISSING = object()
_GUARD = _Guard()
_BUILTINS = {name: getattr(builtins, name) for name in PROTECTED_BUILTINS}


def install(shell=None):
    """Install the guard in this kernel (called once, before any notebook cell)."""
    import numpy  # noqa: F401  (the test cells use it; import it before students can patch it)

    import attn_course  # noqa: F401
    import attn_course.checks  # noqa: F401

    if shell is None:
        shell = get_ipython()  # noqa: F821  (the IPython kernel's global)
    sys.meta_path.insert(0, _SnapshotOnImport())
    _GUARD.snapshot_loaded()
    shell.events.register("pre_run_cell", _GUARD.pre_run_cell)
    setattr(sys, TOKEN_ATTR, _GUARD)


def report(token):
    """JSON for the grader: what was undone, and proof the guard ran before every cell."""
    _GUARD.restore()
    return json.dumps({"token": token, "undone": _GUARD.undone, "cells": _GUARD.cells})
