"""What every grading process sets once: imports it can skip, private SQLite without fsync,
quiet loggers. Nothing here grades; it only makes grading processes start and run faster."""

from __future__ import annotations

import logging
import os
import sys

__all__ = ["fast_private_sqlite", "lean_imports", "quiet_logger"]


def lean_imports() -> None:
    """Skip an import nobody here needs: jsonschema (imported by nbformat) loads the optional
    ``rfc3987_syntax`` for its "iri" format checker, which builds ~40 lark grammars at import
    time (0.6 s per process). Notebook validation never checks formats, so grading processes
    mark it as absent (jsonschema then leaves that one format unchecked)."""
    if "jsonschema" not in sys.modules:
        sys.modules.setdefault("rfc3987_syntax", None)


_PRIVATE_ROOTS: list[str] = []


def fast_private_sqlite(root: str) -> None:
    """No fsync for the throw-away SQLite gradebooks under ``root`` (the template and each
    worker's copy, ~45 commits per submission). The course's gradebook is not under ``root``
    and keeps SQLite's default durability."""
    if not _PRIVATE_ROOTS:
        import sqlite3

        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        @event.listens_for(Engine, "connect")
        def _pragmas(dbapi_connection, _record):
            if not isinstance(dbapi_connection, sqlite3.Connection):
                return
            rows = dbapi_connection.execute("PRAGMA database_list").fetchall()
            path = next((r[2] for r in rows if r[1] == "main"), "")
            if path and any(path.startswith(p + os.sep) for p in _PRIVATE_ROOTS):
                dbapi_connection.execute("PRAGMA synchronous=OFF")
                dbapi_connection.execute("PRAGMA journal_mode=MEMORY")

    root = os.path.realpath(root)
    if root not in _PRIVATE_ROOTS:
        _PRIVATE_ROOTS.append(root)


def quiet_logger(name: str) -> logging.Logger:
    """A logger for nbgrader's converters run on the instructor's behalf: errors only."""
    log = logging.getLogger(name)
    log.setLevel(logging.ERROR)
    log.propagate = False
    if not log.handlers:
        log.addHandler(logging.StreamHandler(sys.stderr))
    return log
