r"""The course's length experiment (Chapter 2, closed in Chapter 5): accuracy against input
length on the reversal task for Sutskever's and Cho's fixed-context models, the attention
decoder and the Transformer.

Chapter 2 (:func:`run` with :data:`SETTINGS`) gives its three RNN models the same number of
Adam steps, on the same batches (one seed), with input lengths drawn uniformly from 4 to
24, the same learning rate and gradient clipping, and the same width (the RNNs'
``d_hidden`` is the Transformer's ``d_model``). Every test length is inside the training
range.

Chapter 5 (:func:`compare`) compares the attention decoder and the Transformer under a
budget that does not favour the model with the cheaper step: each model, from each of
:data:`SEEDS`, is trained until it fits the training batches equally well (:data:`TO_FIT`:
the mean loss of its last 50 steps below a threshold, within a cap), the Transformer with
the optimiser of its paper (:data:`RECIPES`); the chapter reports the steps and the time
each needed, and the accuracy then.

A trained model is stored (weights, loss curve, training time, accuracies) under
``_build/experiments/`` keyed by a hash of its settings, the code it depends on and the torch
version, so the next build (after a change to a chapter's prose, say) loads it instead of
training it again, and a change to any of these trains it afresh. With two processes asking
for the same run at once, a lock file per run makes the second wait for the first rather
than train the same model twice. Set ``ATTN_COURSE_RESULTS`` to store
them elsewhere, or to an empty string to always train.

Torch-only (imports torch).
"""

import copy
import fcntl
import hashlib
import inspect
import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from attn_course.data import reversal_task
from attn_course.nn.attention_decoder import AttentionDecoder
from attn_course.nn.decoders import ChoDecoder, Seq2Seq, SutskeverDecoder
from attn_course.nn.encoders import Encoder
from attn_course.nn.transformer import TransformerDecoder, TransformerEncoder
from attn_course.train import evaluate, train

__all__ = [
    "ATTENTION",
    "CHO",
    "MODELS",
    "RECIPES",
    "SEEDS",
    "SETTINGS",
    "SUTSKEVER",
    "TO_FIT",
    "TRANSFORMER",
    "LengthRun",
    "compare",
    "make_model",
    "results_dir",
    "run",
    "step_seconds",
]

SUTSKEVER, CHO, ATTENTION, TRANSFORMER = MODELS = (
    "Sutskever (C as s_0)",
    "Cho (C at every step)",
    "attention (C_i)",
    "Transformer",
)

#: The shared budget and sizes. ``d_hidden`` is the width of every model.
SETTINGS = {
    "steps": 600,
    "batch_size": 64,
    "lengths": (4, 24),
    "lr": 3e-3,
    "seed": 0,
    "d_emb": 32,
    "d_hidden": 64,
    "d_a": 32,
    "num_heads": 4,
    "num_layers": 1,
    "d_ff": 128,
    "test_lengths": tuple(range(4, 25, 2)),
    "n_test": 200,
    # the optimiser and the stopping rule (train's arguments): Chapter 2's budget is
    # ``steps`` Adam steps at a constant rate, gradients clipped to norm 1 (as Bahdanau et al.)
    "warmup": 0,
    "betas": (0.9, 0.999),
    "clip": 1.0,
    "until_loss": None,
}

#: Chapter 5's budget: train until the mean loss of the last 50 steps is below
#: ``until_loss``, in at most ``steps`` steps (a model that never fits stops there).
TO_FIT = {"until_loss": 0.01, "steps": 3000}

#: How each model is optimised in Chapter 5, over :data:`SETTINGS`: the Transformer with
#: Vaswani et al.'s optimiser, Adam with beta_2 = 0.98 and a warm-up to the same peak rate,
#: then a 1/sqrt(step) decay (:func:`attn_course.train.warmup_factor`), and, as in their
#: paper, no gradient clipping.
RECIPES = {TRANSFORMER: {"warmup": 100, "betas": (0.9, 0.98), "clip": None}}

#: Chapter 5's seeds: each gives a model its initial weights and its batches.
SEEDS = (0, 1, 2)


def make_model(name: str, vocab_size: int, settings=SETTINGS) -> Seq2Seq:
    """One of :data:`MODELS`, initialised by ``settings["seed"]``.

    The RNN models share a bidirectional GRU encoder (as in Bahdanau et al.)
    and decoders of width ``d_hidden``; the Transformer has ``num_layers``
    encoder and decoder layers of width ``d_model = d_hidden``.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {MODELS}")
    s = settings
    torch.manual_seed(s["seed"])
    V, d_emb, d_hidden = vocab_size, s["d_emb"], s["d_hidden"]
    if name == TRANSFORMER:
        sizes = (d_hidden, s["num_heads"], s["num_layers"], s["d_ff"])
        encoder = TransformerEncoder(V, *sizes)
        decoder = TransformerDecoder(V, *sizes)
        return Seq2Seq(encoder, decoder)
    encoder = Encoder(V, d_emb, d_hidden, cell="gru", bidirectional=True)
    Decoder = {
        SUTSKEVER: SutskeverDecoder,
        CHO: ChoDecoder,
        ATTENTION: AttentionDecoder,
    }[name]
    extra = {"score": "additive", "d_a": s["d_a"]} if name == ATTENTION else {}
    decoder = Decoder(V, d_emb, d_hidden, d_context=encoder.d_enc, **extra)
    return Seq2Seq(encoder, decoder)


@dataclass
class LengthRun:
    """What :func:`run` returns, one entry per model name.

    ``exact[name][n]`` is the exact-match accuracy at input length n (``n_test`` fresh
    sequences); ``seconds`` the training time; ``loaded`` the names read from the store.
    """

    models: dict = field(default_factory=dict)
    histories: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)
    exact: dict = field(default_factory=dict)
    loaded: list = field(default_factory=list)


def results_dir() -> Path | None:
    """Where trained models are stored: ``$ATTN_COURSE_RESULTS``, else ``_build/experiments``
    of the course checkout this package is installed from (None: do not store)."""
    if "ATTN_COURSE_RESULTS" in os.environ:
        value = os.environ["ATTN_COURSE_RESULTS"]
        return Path(value) if value else None
    root = Path(__file__).resolve().parents[2]
    return root / "_build" / "experiments" if (root / "_config.yml").is_file() else None


def _key(name: str, settings: dict) -> str:
    """A hash of everything a trained model depends on: its name and settings, the torch
    version, and the code that builds, trains and tests it (the data, the training loop, the
    models and the equations, and this module's two functions that use them)."""
    digest = hashlib.sha256()
    digest.update(json.dumps([name, settings, torch.__version__], sort_keys=True).encode())
    package = Path(__file__).resolve().parents[1]
    sources = [package / "data.py", package / "train.py"]
    sources += sorted((package / "nn").glob("*.py")) + sorted((package / "functional").glob("*.py"))
    for path in sources:
        digest.update(path.read_bytes())
    for fn in (make_model, _train_one):
        digest.update(inspect.getsource(fn).encode())
    return digest.hexdigest()[:16]


def _train_one(name: str, task, settings: dict) -> dict:
    s = settings
    model = make_model(name, task.vocab_size, s)
    start = time.perf_counter()
    history = train(
        model,
        task,
        s["steps"],
        s["batch_size"],
        s["lengths"],
        lr=s["lr"],
        seed=s["seed"],
        warmup=s["warmup"],
        betas=tuple(s["betas"]),
        clip=s["clip"],
        until_loss=s["until_loss"],
        progress=False,
    )
    seconds = time.perf_counter() - start
    exact = evaluate(model, task, s["test_lengths"], n=s["n_test"], seed=1)
    return {"state": model.state_dict(), "history": history, "seconds": seconds, "exact": exact}


def run(names: Iterable[str] = MODELS, settings: dict | None = None) -> LengthRun:
    """Train (or load, see the module docstring) each named model on reversal and test it at
    every length of ``settings["test_lengths"]``.

    Args:
        names: which of :data:`MODELS`, in the order to train them.
        settings: overrides of :data:`SETTINGS` (e.g. fewer steps for a quick look).
    """
    unknown = set(settings or {}) - set(SETTINGS)
    if unknown:
        raise ValueError(f"unknown settings {sorted(unknown)}; known: {sorted(SETTINGS)}")
    s = SETTINGS | (settings or {})
    s["lengths"], s["test_lengths"] = tuple(s["lengths"]), tuple(s["test_lengths"])
    s["betas"] = tuple(s["betas"])
    task = reversal_task()
    store = results_dir()
    result = LengthRun()
    for name in names:
        if store is None:
            record = _train_one(name, task, s)
        else:
            store.mkdir(parents=True, exist_ok=True)
            path = store / f"length-{_key(name, s)}.pt"
            # One lock per model: a chapter executing at the same time waits for this one.
            with open(path.with_suffix(".lock"), "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                if path.is_file():
                    record = torch.load(path, weights_only=True)
                    result.loaded.append(name)
                else:
                    record = _train_one(name, task, s)
                    torch.save(record, path.with_suffix(".tmp"))
                    path.with_suffix(".tmp").rename(path)  # never a half-written file
        model = make_model(name, task.vocab_size, s)
        model.load_state_dict(record["state"])
        model.eval()
        result.models[name] = model
        result.histories[name] = record["history"]
        result.seconds[name] = record["seconds"]
        result.exact[name] = {int(n): float(v) for n, v in record["exact"].items()}
    return result


def compare(
    names: Iterable[str] = (ATTENTION, TRANSFORMER),
    seeds: Iterable[int] = SEEDS,
    settings: dict | None = None,
) -> dict[str, list[LengthRun]]:
    """Chapter 5's comparison: each named model from each seed, trained to fit
    (:data:`TO_FIT`, with its :data:`RECIPES`), stored and loaded as :func:`run` does.

    Args:
        names: which of :data:`MODELS`.
        seeds: one run of each model per seed.
        settings: overrides of everything else (e.g. a lower cap for a quick look).

    Returns ``{name: [LengthRun, one per seed]}``; the steps a run took are
    ``len(run.histories[name]["loss"])``.
    """
    extra = settings or {}
    return {
        name: [
            run([name], TO_FIT | RECIPES.get(name, {}) | {"seed": seed} | extra) for seed in seeds
        ]
        for name in names
    }


def step_seconds(models: dict, steps: int = 10, repeats: int = 2, settings: dict | None = None):
    """Seconds per training step of each model, timed side by side in this process.

    Training times from :func:`run` may come from different processes (a stored run was
    trained by another chapter, while other work shared the machine); this times every
    model the same way, on copies (the models themselves are not changed): ``repeats``
    rounds, each model trained ``steps`` steps per round, the fastest round kept.

    Returns ``{name: seconds per step}``.
    """
    s = SETTINGS | (settings or {})
    task = reversal_task()
    best = {name: float("inf") for name in models}
    for _ in range(repeats):  # rounds interleave the models, so a busy moment hits all
        for name, model in models.items():
            clone = copy.deepcopy(model)
            start = time.perf_counter()
            train(
                clone,
                task,
                steps,
                s["batch_size"],
                s["lengths"],
                lr=s["lr"],
                seed=s["seed"],
                progress=False,
            )
            best[name] = min(best[name], (time.perf_counter() - start) / steps)
    return best
