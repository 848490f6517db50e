"""Which submissions are suspiciously alike, counting only what the students wrote.

A student's work is the source of the assignment's answer cells (nbgrader's solution cells,
by ``grade_id``), with the starter code of the released notebook removed. Each answer is
tokenised and normalised by copydetect (names become ``V``, function names ``F``, strings
``S``; comments and whitespace are dropped) and reduced to winnowing fingerprints
(Schleimer et al., 2003: every run of ``k`` normalised characters longer than the guarantee
threshold shares at least one fingerprint).

The cost stays near-linear in the class size: an inverted index maps each fingerprint of a
part to the students holding it, and only pairs that share fingerprints are compared. A
fingerprint held by many students (more than :func:`common_cap`) is a common way of writing
the part, not evidence of copying; it is dropped, as the starter code's fingerprints are.

A part is evidence only where both students wrote at least ``min_part`` normalised
characters: a three-line softmax written alike by two students says nothing. A pair's score
is the overlap of its evidence parts weighted by how much was written; a pair is shown when
its score and its evidence are both above their thresholds. A shown pair is a reason to look
at two submissions side by side, never a verdict.
"""

from __future__ import annotations

import difflib
import io
import keyword
import math
import re
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "Pair",
    "Settings",
    "Similarity",
    "answer_cells",
    "common_cap",
    "compare_class",
    "written",
]


@dataclass(frozen=True)
class Settings:
    """The thresholds of the comparison (normalised characters, as copydetect counts them)."""

    k: int = 25  # copydetect's noise threshold: shorter matches are ignored
    window: int = 4  # winnowing window: matches of k + window - 1 characters are always seen
    min_part: int = 40  # a part is evidence where both students wrote at least this much
    min_evidence: int = 120  # ... and a pair needs at least this much evidence in all
    threshold: float = 0.4  # the share of the evidence that must match
    common_share: float = 0.02  # a fingerprint held by more than this share of the class,
    common_floor: int = 10  # ... and by more than this many students, is ignored

    def __post_init__(self):
        if self.k < 2 or self.window < 1 or self.min_part < self.k:
            raise ValueError(f"k >= 2, window >= 1 and min_part >= k are needed: {self}")
        if not 0 < self.threshold <= 1 or not 0 < self.common_share <= 1:
            raise ValueError(f"threshold and common_share must be in (0, 1]: {self}")


def common_cap(n_students: int, settings: Settings) -> int:
    """The most students a fingerprint may have and still count as evidence."""
    return max(settings.common_floor, math.ceil(settings.common_share * n_students))


def answer_cells(nb: dict, solution_ids) -> dict[str, str]:
    """grade_id -> the source of that answer cell in a notebook's JSON (cells sharing a
    grade_id, e.g. a duplicated cell, are joined)."""
    out: dict[str, list[str]] = {}
    for cell in nb.get("cells", []):
        meta = cell.get("metadata", {}).get("nbgrader", {})
        gid = meta.get("grade_id") if isinstance(meta, dict) else None
        if gid in solution_ids and cell.get("cell_type") == "code":
            source = cell.get("source", "")
            out.setdefault(gid, []).append("".join(source) if isinstance(source, list) else source)
    return {gid: "\n".join(parts) for gid, parts in out.items()}


_WORD = re.compile(r"[A-Za-z_]\w*")


def _shape(line: str) -> str:
    """A line with every name but Python's keywords replaced by ``V`` and no spaces: the
    starter's ``def`` line is still recognised with its parameters renamed."""
    words = _WORD.sub(lambda m: m.group() if keyword.iskeyword(m.group()) else "V", line)
    return "".join(words.split())


def written(code: str, starter: str) -> str:
    """The lines of an answer cell that are not its starter code.

    The starter's lines are matched in order (difflib, on the lines' shapes: names and
    spacing ignored), so a line the student wrote that happens to look like a starter line
    elsewhere is kept. copydetect's own boilerplate removal drops only fingerprints lying
    wholly inside the starter; a match straddling the given ``def`` line and the student's
    first line would still count."""
    lines = code.splitlines()
    given = [_shape(ln) for ln in starter.splitlines()]
    matcher = difflib.SequenceMatcher(None, given, [_shape(ln) for ln in lines], autojunk=False)
    drop = set()
    for block in matcher.get_matching_blocks():
        drop.update(range(block.b, block.b + block.size))
    return "\n".join(ln for i, ln in enumerate(lines) if i not in drop and ln.strip())


def _fingerprint(code: str, settings: Settings, boilerplate=None):
    from copydetect import CodeFingerprint

    return CodeFingerprint(
        "answer.py", settings.k, settings.window, boilerplate=boilerplate,
        fp=io.StringIO(code), language="python",
    )  # fmt: skip


@dataclass
class Pair:
    """Two students whose answers overlap. ``parts``: part -> {similarity, chars, a, b} (the
    two answers as HTML, the matching code highlighted)."""

    a: str
    b: str
    score: float
    evidence: int  # normalised characters compared (the evidence parts, the shorter side)
    parts: dict = field(default_factory=dict)
    flagged: bool = False


@dataclass
class Similarity:
    """The outcome: flagged ``pairs`` (highest score first), ``clusters`` of students
    (connected by flagged pairs), per part how many answers were ``short`` (no evidence),
    how many fingerprints were ``common``, and the ``settings`` used."""

    pairs: list[Pair]
    clusters: list[list[str]]
    short: dict[str, int]
    common: dict[str, int]
    candidates: int
    settings: Settings


def _prepare(answers, starters, settings):
    """Per (student, part): the written code and its length; the fingerprint arrays."""
    boiler = {
        part: np.array(sorted(_fingerprint(code, settings).hashes), dtype=np.int64)
        for part, code in starters.items()
    }
    code, size = {}, {}
    rows_student, rows_part, rows_hash = [], [], []
    parts = sorted(starters)
    for s, student in enumerate(answers):
        for p, part in enumerate(parts):
            text = written(answers[student].get(part, ""), starters[part])
            if not text:
                continue
            fp = _fingerprint(text, settings, boiler[part])
            code[student, part] = text
            size[student, part] = len(fp.filtered_code)
            if size[student, part] >= settings.min_part and fp.hashes:
                hashes = np.fromiter(fp.hashes, dtype=np.int64, count=len(fp.hashes))
                rows_student.append(np.full(len(hashes), s, dtype=np.int32))
                rows_part.append(np.full(len(hashes), p, dtype=np.int32))
                rows_hash.append(hashes)
    cat = lambda xs, t: np.concatenate(xs) if xs else np.empty(0, dtype=t)  # noqa: E731
    table = (cat(rows_student, np.int32), cat(rows_part, np.int32), cat(rows_hash, np.int64))
    return parts, boiler, code, size, table


def _shared_counts(table, n_students, n_parts, cap):
    """The inverted index, walked: (student a, student b) -> fingerprints they share; per
    part the set of common fingerprints (more than ``cap`` holders); per student the
    number of fingerprints that are not common."""
    student, part, hashes = table
    order = np.lexsort((student, hashes, part))
    student, part, hashes = student[order], part[order], hashes[order]
    new = np.ones(len(hashes), dtype=bool)
    new[1:] = (hashes[1:] != hashes[:-1]) | (part[1:] != part[:-1])
    starts = np.flatnonzero(new)
    sizes = np.diff(np.append(starts, len(hashes)))
    common = [set() for _ in range(n_parts)]
    for i in np.flatnonzero(sizes > cap):
        common[part[starts[i]]].add(int(hashes[starts[i]]))
    rare = np.repeat(sizes <= cap, sizes)
    held = np.bincount(student[rare], minlength=n_students)
    keys = []
    for i in np.flatnonzero((sizes >= 2) & (sizes <= cap)):
        holders = student[starts[i] : starts[i] + sizes[i]].astype(np.int64)
        a, b = np.triu_indices(len(holders), 1)
        keys.append(holders[a] * n_students + holders[b])
    if not keys:
        return {}, common, held
    pairs, counts = np.unique(np.concatenate(keys), return_counts=True)
    return dict(zip(pairs.tolist(), counts.tolist(), strict=True)), common, held


def _compare(fa, fb):
    """copydetect's comparison of two fingerprints: the similarity of each side and both
    answers as HTML with the matching code highlighted."""
    from copydetect import compare_files
    from copydetect.utils import highlight_overlap

    overlap, (sim_a, sim_b), (slices_a, slices_b) = compare_files(fa, fb)
    html = []
    for fp, slices in ((fa, slices_a), (fb, slices_b)):
        if overlap and len(slices[0]):
            text, _ = highlight_overlap(fp.raw_code, slices, "<mark>", "</mark>", escape_html=True)
        else:
            from markupsafe import escape

            text = str(escape(fp.raw_code))
        html.append(text)
    return float(sim_a), float(sim_b), html


def compare_class(answers: dict[str, dict[str, str]], starters: dict[str, str],
                  settings: Settings | None = None) -> Similarity:  # fmt: skip
    """Compare every submission with every other through the fingerprint index.

    ``answers``: student -> part (an answer cell's grade_id) -> the cell's source;
    ``starters``: part -> the released notebook's source of that cell. A part missing from
    a student's answers counts as left unwritten."""
    from copydetect.utils import get_token_coverage
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    settings = settings or Settings()
    students = list(answers)
    n = len(students)
    parts, boiler, code, size, table = _prepare(answers, starters, settings)
    cap = common_cap(n, settings)
    shared, common, held = _shared_counts(table, n, len(parts), cap)
    # a cheap bound before the exact comparison: the pair must share a good part of the
    # fingerprints of the smaller side
    candidates = [
        divmod(key, n)
        for key, count in shared.items()
        if count >= 0.5 * settings.threshold * min(held[key // n], held[key % n])
    ]
    prints: dict = {}

    def fingerprint(student, p):
        if (student, p) not in prints:
            fp = _fingerprint(code[student, parts[p]], settings, boiler[parts[p]])
            for h in common[p] & fp.hashes:  # a common way of writing it: no evidence
                fp.hashes.discard(h)
                del fp.hash_idx[h]
            fp.token_coverage = get_token_coverage(fp.hash_idx, fp.k, len(fp.filtered_code))
            prints[student, p] = fp
        return prints[student, p]

    pairs = []
    for i, j in candidates:
        a, b = students[i], students[j]
        pair = Pair(a, b, 0.0, 0)
        weighted = 0.0
        for p, part in enumerate(parts):
            chars = min(size.get((a, part), 0), size.get((b, part), 0))
            if chars < settings.min_part:
                continue
            fa, fb = fingerprint(a, p), fingerprint(b, p)
            if not fa.token_coverage or not fb.token_coverage:
                continue
            sim_a, sim_b, (html_a, html_b) = _compare(fa, fb)
            similarity = (sim_a + sim_b) / 2
            pair.parts[part] = {"similarity": similarity, "chars": chars, "a": html_a,
                                "b": html_b}  # fmt: skip
            pair.evidence += chars
            weighted += chars * similarity
        pair.score = weighted / pair.evidence if pair.evidence else 0.0
        pair.flagged = pair.score >= settings.threshold and pair.evidence >= settings.min_evidence
        if pair.flagged:
            pairs.append(pair)
    pairs.sort(key=lambda q: (-q.score, q.a, q.b))
    index = {s: i for i, s in enumerate(students)}
    rows = [index[q.a] for q in pairs]
    cols = [index[q.b] for q in pairs]
    graph = coo_matrix((np.ones(len(pairs)), (rows, cols)), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    groups: dict[int, list[str]] = {}
    for q in pairs:
        for s in (q.a, q.b):
            members = groups.setdefault(int(label[index[s]]), [])
            if s not in members:
                members.append(s)
    clusters = sorted((sorted(g) for g in groups.values()), key=lambda g: (-len(g), g))
    short = {
        part: sum(size.get((s, part), 0) < settings.min_part for s in students) for part in parts
    }
    return Similarity(
        pairs=pairs,
        clusters=clusters,
        short=short,
        common={part: len(common[p]) for p, part in enumerate(parts)},
        candidates=len(candidates),
        settings=settings,
    )
