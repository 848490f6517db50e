"""Benchmark: attn_course's batched attention against torch's scaled_dot_product_attention,
the attention decoder's training step with the additive score's h W_k computed once per
sequence against at every step, and the book's build time. Prints ratios measured side by
side in one run.

    python benchmarks/attention_speed.py            # both
    python benchmarks/attention_speed.py --no-book  # attention only

Not a test: the numbers depend on the machine. The reference machine of the course
has 2 CPU cores; the target is "within a small factor of PyTorch's fused kernel" —
attn_course is written to read like the equation, not to be fast.
"""

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils import benchmark

from attn_course.functional.attention import attention

ROOT = Path(__file__).resolve().parent.parent


def time_attention(B: int = 32, T: int = 256, d: int = 64) -> None:
    torch.manual_seed(0)
    q, k, v = (torch.randn(B, T, d) for _ in range(3))
    mask = torch.ones(B, T, T, dtype=torch.bool).tril()  # a causal mask, same for both
    # the two must agree before their speed means anything
    torch.testing.assert_close(attention(q, k, v)[0], F.scaled_dot_product_attention(q, k, v))
    cases = {
        "no mask": (lambda: attention(q, k, v), lambda: F.scaled_dot_product_attention(q, k, v)),
        "causal mask": (
            lambda: attention(q, k, v, mask=mask),
            lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=mask),
        ),
    }
    print(f"attention on CPU, B={B}, T={T}, d={d}, float32, {torch.get_num_threads()} threads")
    print(f"{'case':<12} {'attn_course':>12} {'torch sdpa':>12} {'ratio':>7}")
    for name, (ours, theirs) in cases.items():
        t_ours = benchmark.Timer("f()", globals={"f": ours}).blocked_autorange(min_run_time=1.0)
        t_torch = benchmark.Timer("f()", globals={"f": theirs}).blocked_autorange(min_run_time=1.0)
        ratio = t_ours.median / t_torch.median
        ms_ours, ms_torch = t_ours.median * 1e3, t_torch.median * 1e3
        print(f"{name:<12} {ms_ours:>10.2f}ms {ms_torch:>10.2f}ms {ratio:>6.2f}x")


def time_decoder_step(B: int = 64, n: int = 24) -> None:
    """One training step (forward and backward) of Chapter 5's attention decoder on a batch
    of reversals of length ``n``: h W_k computed once in init_state, as the decoder does,
    against computed at every step (the decoder's own path when a step is given another h)."""
    from attn_course.data import make_batch, reversal_task
    from attn_course.experiments import length
    from attn_course.train import sequence_loss

    task = reversal_task()
    model = length.make_model(length.ATTENTION, task.vocab_size)
    batch = make_batch(task, B, n, np.random.default_rng(0))
    decoder = model.decoder

    def step(once: bool):
        model.zero_grad()
        h, C = model.encoder(batch.src, batch.src_mask)
        s = decoder.init_state(h, C, batch.src_mask)
        logits = []
        for i in range(batch.tgt_in.shape[1]):
            h_i = h if once else h * 1.0  # another tensor: the decoder projects it again
            logits_i, s = decoder.step(batch.tgt_in[:, i], s, h_i, C, batch.src_mask)
            logits.append(logits_i)
        loss = sequence_loss(torch.stack(logits, 1), batch.tgt_out, batch.tgt_mask)
        loss.backward()
        return loss

    torch.testing.assert_close(step(True), step(False))  # the same step, both ways
    t_once = benchmark.Timer("f(True)", globals={"f": step}).blocked_autorange(min_run_time=2.0)
    t_every = benchmark.Timer("f(False)", globals={"f": step}).blocked_autorange(min_run_time=2.0)
    print(
        f"attention decoder training step, B={B}, n={n}: h W_k once "
        f"{t_once.median * 1e3:.1f} ms, at every step {t_every.median * 1e3:.1f} ms, "
        f"ratio {t_once.median / t_every.median:.2f}x"
    )


def time_book_build() -> None:
    """A clean build (no execution cache) into a temporary folder: every chapter runs."""
    jb = Path(sys.executable).parent / "jupyter-book"
    out = Path(tempfile.mkdtemp(prefix="attn-book-"))
    start = time.perf_counter()
    proc = subprocess.run(
        [str(jb), "build", str(ROOT), "--path-output", str(out), "-W", "-n", "--keep-going"],
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - start
    shutil.rmtree(out, ignore_errors=True)
    status = "ok" if proc.returncode == 0 else f"FAILED (exit {proc.returncode})"
    print(f"book build from scratch, every chapter executed: {seconds:.0f} s ({status})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-book", action="store_true", help="skip the book build")
    args = parser.parse_args()
    time_attention()
    time_decoder_step()
    if not args.no_book:
        time_book_build()


if __name__ == "__main__":
    main()
