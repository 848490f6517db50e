"""The course folder: where it is, its nbgrader config, its assignments."""

from __future__ import annotations

from pathlib import Path

from attn_course.grading.errors import SetupError

__all__ = ["find_course", "graded_ids", "load_course_config", "plain_config"]


def find_course(start: Path | None = None) -> Path:
    """The nearest folder at or above ``start`` (default: the working folder) with
    ``nbgrader_config.py``."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "nbgrader_config.py").is_file():
            return folder
    raise SetupError(
        f"no nbgrader_config.py in {here} or any folder above it: run the command from the "
        "course folder, or pass --course DIR"
    )


def load_course_config(course: Path):
    from traitlets.config.loader import PyFileConfigLoader

    try:
        return PyFileConfigLoader("nbgrader_config.py", path=str(course)).load_config()
    except Exception as err:  # noqa: BLE001
        raise SetupError(f"cannot read {course / 'nbgrader_config.py'}: {err}") from err


def plain_config(cfg) -> dict:
    """A traitlets config as nested plain dicts (a task carries it to any process)."""
    out = {}
    for key, value in cfg.items():
        out[key] = plain_config(value) if hasattr(value, "items") else value
    return out


def graded_ids(course: Path, source: str) -> dict[str, list[str]]:
    """Graded cell ids of each of the course's assignments (to recognise a wrong notebook)."""
    import nbformat

    from attn_course.grading.cells import grade_ids

    out = {}
    for folder in sorted((course / source).iterdir()):
        if not folder.is_dir():
            continue
        ids = []
        for nb_path in folder.glob("*.ipynb"):
            try:
                nb = nbformat.read(nb_path, as_version=4)
            except Exception:  # noqa: BLE001, S112
                continue
            ids += sorted(grade_ids(nb.cells))
        out[folder.name] = ids
    return out
