r"""Chapter 4's experiments: a long-range task, and the cost of a layer, measured.

**The task.** "Is the first token equal to the last?" A sequence of T random
symbols; the label is 1 when ``x_1 == x_T`` and 0 otherwise (half and half).
Everything between them is noise, so the answer depends on two tokens
``T - 1`` positions apart and nothing else. A GRU must carry ``x_1`` through
``T - 1`` updates of its state; self-attention can look from position T straight
at position 1 (one step, whatever T is).

**The cost.** :func:`layer_times` times one self-attention layer and one GRU
layer on sequences of growing length n, the measured counterpart of the
complexity column of Vaswani et al. 2017, Table 1:

=================  ===================  ===================  ===================
layer              work per layer       sequential steps     max. path length
=================  ===================  ===================  ===================
self-attention     O(n^2 d)             O(1)                 O(1)
recurrent (GRU)    O(n d^2)             O(n)                 O(n)
=================  ===================  ===================  ===================

Torch-only (imports torch); the chapter imports it explicitly.
"""

import math
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from attn_course.nn.transformer import SelfAttentionEncoder

__all__ = [
    "GRUClassifier",
    "SelfAttentionClassifier",
    "accuracy",
    "accuracy_against_distance",
    "crossover_length",
    "first_equals_last",
    "growth_exponent",
    "layer_times",
    "min_time",
    "multiply_adds",
    "train_classifier",
]


def first_equals_last(n: int, T: int, vocab_size: int = 8, rng=None):
    """``n`` examples of the task: random tokens, label 1 iff the first equals the last.

    Exactly half of the labels are 1 in expectation; a negative example's last
    token is drawn among the *other* ``vocab_size - 1`` symbols, so chance
    accuracy is 50 %.

    Returns ``(tokens, labels)`` as torch long tensors.

    Shapes: tokens (n, T); labels (n,).
    """
    if T < 2 or vocab_size < 2:
        raise ValueError(f"need T >= 2 and vocab_size >= 2, got T={T}, vocab_size={vocab_size}")
    rng = np.random.default_rng(rng)
    tokens = rng.integers(0, vocab_size, size=(n, T))
    labels = rng.integers(0, 2, size=n)
    different = (tokens[:, 0] + rng.integers(1, vocab_size, size=n)) % vocab_size
    tokens[:, -1] = np.where(labels == 1, tokens[:, 0], different)
    return torch.as_tensor(tokens), torch.as_tensor(labels)


class SelfAttentionClassifier(nn.Module):
    """A small self-attention encoder; the class is read from the last position's state.

    Shapes: tokens (B, T) long -> logits (B, num_classes).
    """

    def __init__(
        self,
        vocab_size: int,
        d_model: int = 32,
        num_heads: int = 2,
        num_layers: int = 1,
        d_ff: int = 64,
        max_len: int = 512,
        positions: str = "sinusoidal",
        num_classes: int = 2,
    ):
        super().__init__()
        self.encoder = SelfAttentionEncoder(
            vocab_size, d_model, num_heads, num_layers, d_ff, max_len, positions=positions
        )
        self.head = nn.Linear(d_model, num_classes)

    @property
    def weights(self):
        """Attention weights of the last call, one (B, h, T, T) tensor per layer."""
        return self.encoder.weights

    def forward(self, tokens):
        h = self.encoder(tokens)  # (B, T, d_model)
        return self.head(h[:, -1])  # (B, num_classes)


class GRUClassifier(nn.Module):
    """Embedding + one GRU layer; the class is read from the final hidden state h_T.

    Shapes: tokens (B, T) long -> logits (B, num_classes).
    """

    def __init__(self, vocab_size: int, d_model: int = 32, num_classes: int = 2):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d_model)
        self.rnn = nn.GRU(d_model, d_model, batch_first=True)
        self.head = nn.Linear(d_model, num_classes)

    def forward(self, tokens):
        h, _ = self.rnn(self.embed(tokens))  # (B, T, d_model)
        return self.head(h[:, -1])  # (B, num_classes)


def train_classifier(
    model: nn.Module,
    T: int,
    steps: int = 300,
    batch_size: int = 64,
    lr: float = 3e-3,
    vocab_size: int = 8,
    seed: int = 0,
    progress: bool = False,
) -> list[float]:
    """Adam on fresh batches of :func:`first_equals_last` (no example is seen twice).

    Returns the training loss of every step.
    """
    rng = np.random.default_rng(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    losses = []
    for _ in tqdm(range(steps), disable=not progress, desc=f"T={T}"):
        tokens, labels = first_equals_last(batch_size, T, vocab_size, rng)
        loss = nn.functional.cross_entropy(model(tokens), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


@torch.no_grad()
def accuracy(model: nn.Module, tokens, labels) -> float:
    """Fraction of correct predictions. Shapes: tokens (n, T); labels (n,)."""
    model.eval()
    return (model(tokens).argmax(dim=-1) == labels).float().mean().item()


def accuracy_against_distance(
    models: dict[str, Callable[[int], nn.Module]],
    lengths: Sequence[int],
    steps: int = 300,
    n_test: int = 2000,
    vocab_size: int = 8,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, dict[str, list]]:
    """Train each model from scratch at each length with the same budget; test accuracy.

    Every model sees the same training batches and the same test set at a given
    length (same seeds), so the only difference is the architecture.

    Args:
        models: ``{name: make_model}``, where ``make_model(T)`` builds a fresh model.
        lengths: sequence lengths T; the distance between the two tokens is T - 1.

    Returns:
        ``{"accuracy": {name: [...]}, "seconds": {name: [...]}, "models": {name: [...]}}``,
        one entry per length: test accuracy, training time, the trained model.
    """
    results: dict[str, dict[str, list]] = {
        key: {name: [] for name in models} for key in ("accuracy", "seconds", "models")
    }
    for T in tqdm(lengths, disable=not progress, desc="lengths"):
        test_tokens, test_labels = first_equals_last(n_test, T, vocab_size, rng=seed + 10_000)
        for name, make_model in models.items():
            torch.manual_seed(seed)
            model = make_model(T)
            start = time.perf_counter()
            train_classifier(model, T, steps=steps, vocab_size=vocab_size, seed=seed)
            results["seconds"][name].append(time.perf_counter() - start)
            results["accuracy"][name].append(accuracy(model, test_tokens, test_labels))
            results["models"][name].append(model)
    return results


def multiply_adds(n: int, d: int) -> dict[str, int]:
    """Multiply-adds of one layer on a sequence of n vectors of size d.

    The layers are those of :func:`layer_times`; biases, softmax and gate
    nonlinearities are left out.

    - self-attention: Q, K, V and output projections 4 n d^2, scores Q K^T
      n^2 d, weighted sum n^2 d: ``4 n d^2 + 2 n^2 d``.
    - GRU: per step, three gates each with an input and a hidden matrix
      (d x d): ``6 n d^2``.

    Both have the n d^2 projections; attention adds 2 n^2 d, the GRU 2 n d^2
    more, so attention does less work exactly when n < d.
    """
    attention = 4 * n * d * d + 2 * n * n * d
    return {"self-attention": attention, "GRU": 6 * n * d * d}


def min_time(fn: Callable[[], object], repeats: int = 7, number: int = 1) -> float:
    """Seconds per call of ``fn()``: the minimum over ``repeats`` timings of ``number`` calls.

    The minimum, not the mean: on a shared machine other processes only ever
    add time, so the fastest run is the best estimate of the cost itself.
    One warm-up call first (allocations, lazy initialisation).
    """
    fn()
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - start) / number)
    return best


@torch.no_grad()
def layer_times(
    lengths: Sequence[int],
    d_model: int = 64,
    batch_size: int = 1,
    repeats: int = 7,
    seed: int = 0,
) -> dict[str, list[float]]:
    """Forward time of one self-attention layer and one GRU layer for each sequence length n.

    Self-attention: ``torch.nn.MultiheadAttention(d_model, 1)`` (projections,
    n x n scores, softmax, weighted sum, output projection). Recurrent:
    ``torch.nn.GRU(d_model, d_model)``, n steps one after the other. Both are
    PyTorch's own optimised kernels, so the comparison is not about Python.

    Returns ``{"n": lengths, "self-attention": seconds, "GRU": seconds}``.
    """
    torch.manual_seed(seed)
    attn = nn.MultiheadAttention(d_model, num_heads=1, batch_first=True).eval()
    gru = nn.GRU(d_model, d_model, batch_first=True).eval()
    times: dict[str, list[float]] = {"n": list(lengths), "self-attention": [], "GRU": []}
    for n in lengths:
        x = torch.randn(batch_size, n, d_model)  # (B, n, d)
        number = max(1, 2048 // n)  # several calls per timing when one call is very short
        times["self-attention"].append(
            min_time(lambda x=x: attn(x, x, x, need_weights=False), repeats, number)
        )
        times["GRU"].append(min_time(lambda x=x: gru(x), repeats, number))
    return times


def crossover_length(n: Sequence[int], attn_seconds, rnn_seconds) -> float:
    """Where self-attention becomes slower than the RNN, estimated from the longest n measured.

    At large n attention's time grows like n^2 and the RNN's like n, so their
    ratio t_rnn / t_attn falls like 1/n and reaches 1 at
    ``n* = n_max * t_rnn(n_max) / t_attn(n_max)``. Inside the measured range
    this is the crossing seen in the figure; beyond it, an extrapolation.
    """
    return float(n[-1] * rnn_seconds[-1] / attn_seconds[-1])


def growth_exponent(n: Sequence[float], seconds: Sequence[float]) -> float:
    """The slope of log(time) against log(n): time ~ n^slope (2 for n^2, 1 for n).

    Fitted by least squares on the points given; pass the large-n end, where
    fixed overheads no longer dominate.
    """
    slope, _ = np.polyfit(np.log(np.asarray(n, float)), np.log(np.asarray(seconds, float)), 1)
    return float(slope)
