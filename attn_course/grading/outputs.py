"""What a grading run writes besides the gradebook: each student's files (autograded
notebooks, feedback, ``grading.log``), ``grades.csv``, and the summary on the terminal."""

from __future__ import annotations

import csv
import shutil
from collections import Counter
from pathlib import Path
from statistics import mean, median

__all__ = [
    "Progress",
    "check_csv_source",
    "one_line",
    "print_summary",
    "write_csv",
    "write_files",
]


class Progress:
    """The progress bar on stderr (tqdm): the count and an ETA, the student just graded, and,
    while nothing finishes, the student whose notebook has been running longest once that is
    over ``long`` seconds (``running``: student -> seconds, from the runner)."""

    def __init__(self, total: int, enabled: bool = True, running=None, file=None,
                 long: float = 30.0, every: float = 5.0, **bar):  # fmt: skip
        import sys
        import threading

        from tqdm import tqdm

        self.bar = tqdm(total=total, unit="submission", disable=not enabled, desc="grading",
                        file=file or sys.stderr, dynamic_ncols=True, **bar)  # fmt: skip
        self._running, self._long, self._every = running, long, every
        self._stop = threading.Event()
        self._watcher = None
        if enabled and running is not None:
            self._watcher = threading.Thread(target=self._watch, daemon=True)
            self._watcher.start()

    def graded(self, student: str, score: float, max_score: float) -> None:
        # the student just graded, shown with the count that includes them
        self.bar.set_postfix_str(f"{student}: {score:g}/{max_score:g}", refresh=False)
        if self.bar.n + 1 < self.bar.total:
            self.bar.update(1)
        else:
            self.bar.n = self.bar.total  # the last line is drawn once, by close()

    def _watch(self) -> None:
        while not self._stop.wait(self._every):
            try:
                running = self._running()
            except Exception:  # noqa: BLE001, S112  (a bar must never stop the grading)
                continue
            long = [(t, s) for s, t in running.items() if t >= self._long]
            if long:
                seconds, student = max(long)
                self.bar.set_postfix_str(f"running long: {student} ({seconds:.0f} s)")

    def close(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join()
        self.bar.close()


def write_files(result, feedback_dir: Path, autograded_root: Path) -> None:
    """A result's files into place: the autograded notebooks (replacing an earlier run's),
    the feedback HTML and ``grading.log``."""

    def put(files: dict[str, bytes], folder: Path) -> None:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True, exist_ok=True)
        for rel, data in files.items():
            target = (folder / rel).resolve()
            if folder.resolve() in target.parents:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)

    if result.autograded:
        put(result.autograded, autograded_root / result.student_id / result.assignment)
    put(result.feedback, feedback_dir)
    log = result.log or "".join(f"[WARNING] status: {s}\n" for s in result.status)
    if result.error and result.error not in log:
        log += "[ERROR] grading error:\n" + result.error
    (feedback_dir / "grading.log").write_text(log or "[INFO] graded\n")


def one_line(err: Exception) -> str:
    """The driver's own first line (SQLAlchemy wraps it in three lines and a link)."""
    text = str(getattr(err, "orig", None) or err).strip()
    return text.splitlines()[0] if text else type(err).__name__


CSV_HEAD = [
    "student_id",
    "assignment",
    "score",
    "max_score",
    "status",
    "flagged",
    "late",
    "seconds",
]


def _source_file(path: Path) -> Path:
    return path.with_name(path.name + ".gradebook")  # grades.csv.gradebook


def check_csv_source(path: Path, gradebook: str) -> None:
    """SetupError if ``path`` holds the grades of another gradebook: a run merges into its
    own gradebook's CSV only (rows of two gradebooks in one file would mislead)."""
    from attn_course.grading.errors import SetupError

    source = _source_file(path)
    if path.is_file() and source.is_file() and source.read_text().strip() != gradebook:
        raise SetupError(
            f"{path} holds the grades of the gradebook {source.read_text().strip()}, this run "
            f"writes {gradebook}: pass another --out (nothing was graded)"
        )


def write_csv(path: Path, results, gradebook: str = "") -> None:
    """``grades.csv``: one row per student. Rows of students not graded in this run are kept
    (grading one late student updates that student's row only). ``gradebook`` (its URL
    without credentials) is written beside it, in ``grades.csv.gradebook``, so that no later
    run merges another gradebook's rows into it (:func:`check_csv_source`)."""
    rows: dict[str, dict[str, str]] = {}
    grade_ids: list[str] = []
    if path.is_file():
        with path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            grade_ids = [f for f in reader.fieldnames or [] if f not in CSV_HEAD]
            rows = {r["student_id"]: r for r in reader if r.get("student_id")}
    for r in results:
        for data in r.notebooks.values():
            for gid in data["grades"]:
                if gid not in grade_ids:
                    grade_ids.append(gid)
    for r in results:
        per = {}
        for data in r.notebooks.values():
            for gid, g in data["grades"].items():
                per[gid] = "" if g["auto_score"] is None else f"{g['auto_score']:g}"
        rows[r.student_id] = {
            "student_id": r.student_id,
            "assignment": r.assignment,
            "score": f"{r.score:g}",
            "max_score": f"{r.max_score:g}",
            "status": r.status_text(),
            "flagged": "yes" if r.flagged else "",
            "late": "yes" if r.late else "",
            "seconds": f"{r.seconds:.1f}",
            **{g: per.get(g, "0") for g in grade_ids},
        }
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=[*CSV_HEAD, *grade_ids], restval="")
        w.writeheader()
        for sid in sorted(rows):
            w.writerow(rows[sid])
    tmp.replace(path)
    if gradebook:
        _source_file(path).write_text(gradebook + "\n")


def print_summary(results, elapsed, workers, engine, sandbox, where, retried, out) -> None:
    n = len(results)
    scores = [r.score for r in results]
    max_score = max((r.max_score for r in results), default=0.0)
    kinds = Counter()  # students per kind: a student with two notebooks missing counts once
    who: dict[str, list[str]] = {}
    for r in results:
        for kind in {s.split(":")[0].split(" (")[0] for s in r.status or ["graded"]}:
            kinds[kind] += 1
            who.setdefault(kind, []).append(r.student_id)
    workers = min(workers, max(n, 1))  # one submission is graded by one worker
    box = (
        f"kernels boxed by {sandbox.kind}{', unprivileged uid' if sandbox.uid is not None else ''}"
        if sandbox.kind == "bwrap"
        else "kernels NOT boxed: resource limits only"
    )
    lines = [
        "",
        f"Graded {n} submission{'s' * (n != 1)} in {elapsed:.1f} s with {workers} worker"
        f"{'s' * (workers != 1)}{'' if engine == 'local' else ' on the ' + engine} "
        f"({elapsed / max(n, 1):.2f} s per submission; {box}).",
    ]
    if n:
        lines.append(
            f"Scores out of {max_score:g}: mean {mean(scores):.2f}, median {median(scores):g}, "
            f"full marks {sum(s == max_score for s in scores)}, zero {sum(s == 0 for s in scores)}."
        )
    lines.append(
        f"What happened to the {n} student{'s' * (n != 1)} (one can be under several headings):"
    )
    for what, count in kinds.most_common():
        lines.append(f"  {count:4d}  {what}")
        if what != "graded" and count <= 10:  # who, where there are few enough to read
            lines.append("          " + ", ".join(sorted(who[what])))
    flagged = [r.student_id for r in results if r.flagged]
    if flagged:
        lines.append(
            f"Flagged for review ({len(flagged)}): {', '.join(flagged[:10])}"
            + (" ..." if len(flagged) > 10 else "")
        )
    if retried:
        lines.append(
            f"Retried after their grading process died ({len(retried)}): "
            + ", ".join(sorted(retried))
        )
    errors = [r for r in results if r.error]
    for r in errors[:10]:
        last = r.error.strip().splitlines()[-1] if r.error.strip() else "?"
        lines.append(f"Grading error for {r.student_id}: {last}")
    if errors:
        lines.append("  (full tracebacks in each student's grading.log)")
    for note in sandbox.notes:
        lines.append(f"Warning: {note}")
    lines.append("Written:")
    for what, path in where.items():
        lines.append(f"  {what}: {path}")
    print("\n".join(lines), file=out)
