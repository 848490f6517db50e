"""Toy sequence-to-sequence tasks, generated in code (no downloads), and padded batches.

A :class:`Task` knows its vocabulary and how to draw one (source, target) pair
of a given length from a NumPy random generator. :func:`make_batch` draws
``batch_size`` pairs, pads them and returns a :class:`Batch` of torch tensors
ready for teacher forcing::

    task = reversal_task()
    rng = np.random.default_rng(0)
    batch = make_batch(task, batch_size=32, lengths=(4, 24), rng=rng)
    batch.src          # (B, S) long, PAD after each sequence's end
    batch.src_mask     # (B, S) bool, True = real token
    batch.tgt_in       # (B, T) long, [BOS, y_1, ..., y_m, PAD, ...]
    batch.tgt_out      # (B, T) long, [y_1, ..., y_m, EOS, PAD, ...]
    batch.tgt_mask     # (B, T) bool, True where tgt_out is a real token (incl. EOS)

Token ids 0, 1, 2 are the specials :data:`PAD`, :data:`BOS`, :data:`EOS` in
every task; source and target share one vocabulary.

Tasks:

- :func:`reversal_task`: ``a b c d`` -> ``d c b a`` (anti-diagonal alignment)
- :func:`copy_task`: ``a b c d`` -> ``a b c d`` (diagonal alignment)
- :func:`sort_task`: ``3 1 2 1`` -> ``1 1 2 3`` (alignment depends on the content)
- :func:`date_task`: ``2 5 _ n o v _ 2 0 2 6`` -> ``2 0 2 6 - 1 1 - 2 5`` (crossing,
  many-to-one alignment; the length argument is ignored, dates have their own length)
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

__all__ = [
    "BOS",
    "EOS",
    "PAD",
    "SPECIALS",
    "Batch",
    "Task",
    "copy_task",
    "date_task",
    "make_batch",
    "reversal_task",
    "sort_task",
]

PAD, BOS, EOS = 0, 1, 2
SPECIALS = ("<pad>", "<bos>", "<eos>")

Pair = tuple[list[int], list[int]]


@dataclass(frozen=True)
class Task:
    """A toy sequence-to-sequence task.

    Attributes:
        name: short name used in labels, e.g. ``"reversal"``.
        vocab: all tokens, ``vocab[i]`` is the token of id ``i``; starts with :data:`SPECIALS`.
        sampler: ``sampler(rng, length) -> (src_ids, tgt_ids)``, without BOS/EOS.
    """

    name: str
    vocab: tuple[str, ...]
    sampler: Callable[[np.random.Generator, int], Pair]

    def __post_init__(self):
        if tuple(self.vocab[:3]) != SPECIALS:
            raise ValueError(f"vocab must start with {SPECIALS}, got {tuple(self.vocab[:3])}")

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def sample(self, rng: np.random.Generator, length: int) -> Pair:
        """One (source ids, target ids) pair whose source has ``length`` tokens."""
        if length < 1:
            raise ValueError(f"length must be at least 1, got {length}")
        return self.sampler(rng, int(length))

    def encode(self, tokens: Sequence[str]) -> list[int]:
        """Tokens -> ids (raises ValueError for a token outside the vocabulary)."""
        index = {t: i for i, t in enumerate(self.vocab)}
        unknown = [t for t in tokens if t not in index]
        if unknown:
            raise ValueError(f"tokens {unknown} are not in the {self.name} vocabulary")
        return [index[t] for t in tokens]

    def decode(self, ids) -> list[str]:
        """Ids -> tokens for labels: stops at the first EOS, skips PAD and BOS."""
        tokens = []
        for i in np.asarray(ids).tolist():
            if i == EOS:
                break
            if i not in (PAD, BOS):
                tokens.append(self.vocab[i])
        return tokens


def _symbol_task(name: str, n_symbols: int, target: Callable[[list[int]], list[int]]) -> Task:
    """A task over the symbols ``a, b, c, ...`` whose target is a function of the source."""
    if not 1 <= n_symbols <= 26:
        raise ValueError(f"n_symbols must be between 1 and 26, got {n_symbols}")
    symbols = tuple(chr(ord("a") + i) for i in range(n_symbols))
    first = len(SPECIALS)

    def sampler(rng: np.random.Generator, length: int) -> Pair:
        src = rng.integers(first, first + n_symbols, size=length).tolist()
        return src, target(src)

    return Task(name, SPECIALS + symbols, sampler)


def reversal_task(n_symbols: int = 10) -> Task:
    """Reverse the source: ``a b c`` -> ``c b a``. Output i aligns with input n + 1 - i."""
    return _symbol_task("reversal", n_symbols, lambda src: src[::-1])


def copy_task(n_symbols: int = 10) -> Task:
    """Copy the source: ``a b c`` -> ``a b c``. Output i aligns with input i."""
    return _symbol_task("copy", n_symbols, lambda src: list(src))


def sort_task(n_symbols: int = 10) -> Task:
    """Sort the source: ``c a b a`` -> ``a a b c``. Which input an output copies depends on
    the content, not on the position."""
    return _symbol_task("sort", n_symbols, sorted)


MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def date_task(first_year: int = 1950, last_year: int = 2049) -> Task:
    """Convert a date, character by character: ``25 nov 2026`` -> ``2026-11-25``.

    The source is ``day month year`` with a one- or two-digit day and a
    three-letter month; the target is ISO 8601. The year moves to the front,
    three letters become two digits, and the day moves to the end: the
    alignment crosses and is many-to-one. The ``length`` passed to
    :meth:`Task.sample` is ignored (a date has 10 or 11 characters).
    """
    chars = tuple("0123456789") + (" ", "-") + tuple(sorted(set("".join(MONTHS))))
    vocab = SPECIALS + chars
    index = {t: i for i, t in enumerate(vocab)}

    def sampler(rng: np.random.Generator, length: int) -> Pair:
        year = int(rng.integers(first_year, last_year + 1))
        month = int(rng.integers(1, 13))
        day = int(rng.integers(1, _DAYS_IN_MONTH[month - 1] + 1))
        src = f"{day} {MONTHS[month - 1]} {year}"
        tgt = f"{year:04d}-{month:02d}-{day:02d}"
        return [index[c] for c in src], [index[c] for c in tgt]

    return Task("date", vocab, sampler)


class Batch(NamedTuple):
    """A padded batch for teacher forcing (see the module docstring).

    Shapes:
        src, src_mask: (B, S); tgt_in, tgt_out, tgt_mask: (B, T), T = longest target + 1.
    """

    src: torch.Tensor
    src_mask: torch.Tensor
    tgt_in: torch.Tensor
    tgt_out: torch.Tensor
    tgt_mask: torch.Tensor


def _draw_lengths(lengths, batch_size: int, rng: np.random.Generator) -> np.ndarray:
    """An int -> that length for all; an inclusive (lo, hi) -> uniform lengths in the range."""
    if isinstance(lengths, int | np.integer):
        lo = hi = int(lengths)
    else:
        lo, hi = (int(n) for n in lengths)
    if not 1 <= lo <= hi:
        raise ValueError(
            f"lengths must be an int >= 1 or a range (lo, hi) with 1 <= lo <= hi, got {lengths}"
        )
    return rng.integers(lo, hi + 1, size=batch_size)


def pad_pairs(pairs: Sequence[Pair]) -> Batch:
    """Pad a list of (src ids, tgt ids) pairs into a :class:`Batch` (adds BOS and EOS)."""
    B = len(pairs)
    S = max(len(src) for src, _ in pairs)
    T = max(len(tgt) for _, tgt in pairs) + 1
    src = np.full((B, S), PAD, dtype=np.int64)
    tgt_in = np.full((B, T), PAD, dtype=np.int64)
    tgt_out = np.full((B, T), PAD, dtype=np.int64)
    for b, (x, y) in enumerate(pairs):
        src[b, : len(x)] = x
        tgt_in[b, : len(y) + 1] = [BOS, *y]
        tgt_out[b, : len(y) + 1] = [*y, EOS]
    src, tgt_in, tgt_out = (torch.from_numpy(a) for a in (src, tgt_in, tgt_out))
    return Batch(src, src != PAD, tgt_in, tgt_out, tgt_out != PAD)


def make_batch(task: Task, batch_size: int, lengths, rng: np.random.Generator) -> Batch:
    """Draw ``batch_size`` pairs of ``task`` and pad them into a :class:`Batch`.

    Args:
        lengths: source length, an int, or an inclusive range ``(lo, hi)`` from which each
            pair's length is drawn uniformly.
        rng: ``np.random.default_rng(seed)``; the same seed gives the same batch.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    return pad_pairs([task.sample(rng, n) for n in _draw_lengths(lengths, batch_size, rng)])
