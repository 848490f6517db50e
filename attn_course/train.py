"""A small, deterministic training loop, its accuracies and a per-length evaluation, shared by
the chapters.

Any model with ``model(batch) -> logits (B, T, V)`` can be trained (teacher forcing,
Adam, gradient clipping, cross-entropy over the real target tokens)::

    torch.manual_seed(0)                       # the model's initial weights
    model = Seq2Seq(Encoder(...), ChoDecoder(...))
    history = train(model, reversal_task(), steps=1500, batch_size=64,
                    lengths=(4, 24), lr=3e-3, seed=0)
    plt.plot(history["loss"])
    evaluate(model, task, lengths=range(4, 25), n=200, seed=1)   # {4: 1.0, ..., 24: 0.0}

The same seed gives the same batches and therefore, with the same initial weights,
the same losses from run to run.

The progress bar is plain-text ``tqdm`` on standard error (not a notebook widget,
which would need ipywidgets), redrawn at most twice a second. Pass
``progress=False`` in a chapter: when the book executes a notebook, every redraw
is stored as a separate output and myst-nb prints each on its own line, so one
run would add hundreds of lines to the page (and the book's tests reject stderr
in a chapter, which catches a forgotten ``progress=False``).
"""

from collections.abc import Callable, Iterable

import numpy as np
import torch
from tqdm import tqdm

from attn_course.data import PAD, Task, make_batch
from attn_course.functional._arrays import shape_of
from attn_course.nn.decoders import greedy_decode

__all__ = [
    "evaluate",
    "exact_match",
    "sequence_loss",
    "token_accuracy",
    "train",
    "warmup_factor",
]


def sequence_loss(
    logits: torch.Tensor,
    tgt_out: torch.Tensor,
    tgt_mask: torch.Tensor,
):
    """Mean cross-entropy over the real target tokens (EOS in, padding out).

    Shapes:
        logits: (B, T, V); tgt_out: (B, T) long; tgt_mask: (B, T) bool;
        returns a scalar.
    """
    if logits.shape[:2] != tgt_out.shape or tgt_out.shape != tgt_mask.shape:
        raise ValueError(
            "expected logits (B, T, V) with tgt_out and tgt_mask (B, T): "
            f"got logits {shape_of(logits)}, "
            f"tgt_out {shape_of(tgt_out)}, "
            f"tgt_mask {shape_of(tgt_mask)}"
        )
    nll = torch.nn.functional.cross_entropy(
        logits.transpose(1, 2), tgt_out, reduction="none"
    )  # (B, T)
    return (nll * tgt_mask).sum() / tgt_mask.sum()


def warmup_factor(step: int, warmup: int) -> float:
    """The learning rate of step ``step`` (from 0) as a fraction of its peak.

    Vaswani et al. (2017, eq. 3) set ``lrate = d_model**-0.5 * min(t**-0.5, t * warmup**-1.5)``
    at step t = step + 1: a linear rise for ``warmup`` steps, then ``1/sqrt(t)``. Divided by
    its peak (at t = warmup) that is ``min(t / warmup, sqrt(warmup / t))``; ``warmup = 0``
    means a constant rate (1).
    """
    if warmup == 0:
        return 1.0
    t = step + 1
    return min(t / warmup, (warmup / t) ** 0.5)


def train(
    model: torch.nn.Module,
    task: Task,
    steps: int,
    batch_size: int,
    lengths,
    lr: float = 3e-3,
    seed: int = 0,
    clip: float | None = 1.0,
    warmup: int = 0,
    betas: tuple[float, float] = (0.9, 0.999),
    until_loss: float | None = None,
    window: int = 50,
    progress: bool = True,
    desc: str | None = None,
) -> dict[str, list[float]]:
    """Train ``model`` on fresh batches of ``task`` with teacher forcing.

    Args:
        model: ``model(batch) -> logits`` (B, T, V); trained in place.
        task: the toy task batches are drawn from.
        steps: number of optimiser steps (one fresh batch each); with ``until_loss``, the
            most it may take.
        batch_size: sequences per batch.
        lengths: source length(s) of the batches: an int or an inclusive range ``(lo, hi)``.
        lr: Adam learning rate.
        seed: seeds the batches (and torch's RNG inside the loop, e.g. for dropout).
        clip: gradients are rescaled to at most this global norm (RNNs can blow up);
            None leaves them as they are (the Transformer paper clips nothing).
        warmup: 0 for a constant rate; otherwise Vaswani et al.'s schedule scaled to peak
            at ``lr``: the rate rises linearly for ``warmup`` steps, then falls as
            ``1/sqrt(step)`` (:func:`warmup_factor`).
        betas: Adam's (beta_1, beta_2); the Transformer paper uses (0.9, 0.98).
        until_loss: stop at the first step where the mean loss of the last ``window``
            steps is below this (the budget "trained until it fits equally well").
        window: the number of steps ``until_loss`` averages.
        progress: show a tqdm progress bar.
        desc: label of the progress bar (default: the task's name).

    Returns:
        ``{"loss": [...], "grad_norm": [...], "lr": [...]}``, one entry per step taken
        (gradient norm before clipping; the rate the step used).
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if warmup < 0:
        raise ValueError(f"warmup must be 0 (no warm-up) or a number of steps, got {warmup}")
    if until_loss is not None and not until_loss > 0:
        raise ValueError(f"until_loss must be a loss above 0 (or None), got {until_loss}")
    if window < 1:
        raise ValueError(f"window must be at least 1 step, got {window}")
    if clip is not None and not clip > 0:
        raise ValueError(f"clip must be a gradient norm above 0 (or None: no clipping), got {clip}")
    max_norm = float("inf") if clip is None else clip  # an infinite norm only measures
    rng = np.random.default_rng(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, betas=betas)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_factor(step, warmup)
    )
    history = {"loss": [], "grad_norm": [], "lr": []}
    model.train()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        bar = tqdm(
            range(steps),
            desc=desc or task.name,
            disable=not progress,
            mininterval=0.5,
            unit="step",
            ncols=90,
        )
        for _ in bar:
            batch = make_batch(task, batch_size, lengths, rng)
            loss = sequence_loss(model(batch), batch.tgt_out, batch.tgt_mask)
            optimizer.zero_grad()
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
            history["lr"].append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            schedule.step()
            history["loss"].append(loss.item())
            history["grad_norm"].append(grad_norm.item())
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
            recent = history["loss"][-window:]
            if until_loss is not None and len(recent) == window:
                if sum(recent) / window < until_loss:
                    break
    model.eval()
    return history


def _correct(pred, tgt_out, tgt_mask):
    """(B, T) bool: prediction equals target at each real target position (incl. EOS)."""
    if pred.ndim != 2 or tgt_out.shape != tgt_mask.shape or pred.shape[0] != tgt_out.shape[0]:
        raise ValueError(
            f"expected pred (B, L) and tgt_out, tgt_mask (B, T): got pred {shape_of(pred)}, "
            f"tgt_out {shape_of(tgt_out)}, tgt_mask {shape_of(tgt_mask)}"
        )
    T = tgt_out.shape[1]
    if pred.shape[1] < T:  # too short a prediction misses the remaining targets
        pred = torch.nn.functional.pad(pred, (0, T - pred.shape[1]), value=PAD)
    return (pred[:, :T] == tgt_out) & tgt_mask


def exact_match(pred, tgt_out, tgt_mask, reduce: bool = True):
    """Fraction of sequences whose every target token, EOS included, is predicted.

    Positions after the target's EOS are ignored. ``reduce=False`` gives one bool per
    sequence.

    Shapes:
        pred: (B, L) long; tgt_out, tgt_mask: (B, T); returns a float, or (B,) bool.
    """
    exact = (_correct(pred, tgt_out, tgt_mask) | ~tgt_mask).all(dim=1)  # (B,)
    return exact if not reduce else exact.float().mean().item()


def token_accuracy(pred, tgt_out, tgt_mask) -> float:
    """Fraction of real target tokens (EOS included, padding excluded) predicted correctly.

    Shapes:
        pred: (B, L) long; tgt_out, tgt_mask: (B, T).
    """
    return (_correct(pred, tgt_out, tgt_mask).sum() / tgt_mask.sum()).item()


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    task: Task,
    lengths: Iterable[int],
    n: int = 200,
    seed: int = 1,
    metric: Callable = exact_match,
    decode: Callable = greedy_decode,
) -> dict[int, float]:
    """Score greedy decoding on ``n`` fresh sequences of each source length.

    Args:
        lengths: the source lengths to test, e.g. ``range(4, 25)``.
        n: sequences per length.
        seed: seeds the test sequences (each length draws from its own stream, so
            adding a length does not change the others).
        metric: ``metric(pred, tgt_out, tgt_mask) -> float``: :func:`exact_match` (default)
            or :func:`~attn_course.train.token_accuracy`.
        decode: ``decode(model, src, src_mask, max_len) -> pred`` (B, max_len).

    Returns:
        ``{length: score}``.
    """
    model.eval()
    scores = {}
    for length in lengths:
        batch = make_batch(task, n, int(length), np.random.default_rng([seed, int(length)]))
        pred = decode(model, batch.src, batch.src_mask, max_len=batch.tgt_out.shape[1])
        scores[int(length)] = metric(pred, batch.tgt_out, batch.tgt_mask)
    return scores
