"""The shared length experiment (Chapters 2 and 5): each model trained once per settings and
code version, stored, and loaded by the next chapter instead of being trained again."""

import pytest
import torch

from attn_course.data import reversal_task
from attn_course.experiments import length
from attn_course.train import train

torch.set_num_threads(1)
QUICK = {"steps": 3, "batch_size": 4, "n_test": 5, "test_lengths": (4, 6)}


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("ATTN_COURSE_RESULTS", str(tmp_path))
    return tmp_path


def test_second_run_loads_the_first_runs_models(store):
    first = length.run([length.TRANSFORMER, length.CHO], QUICK)
    assert first.loaded == []
    assert len(list(store.glob("length-*.pt"))) == 2
    second = length.run([length.CHO, length.TRANSFORMER], QUICK)
    assert sorted(second.loaded) == sorted([length.CHO, length.TRANSFORMER])
    for name in (length.CHO, length.TRANSFORMER):
        assert second.seconds[name] == first.seconds[name]
        assert second.exact[name] == first.exact[name]
        assert second.histories[name]["loss"] == first.histories[name]["loss"]
        for a, b in zip(
            first.models[name].state_dict().values(),
            second.models[name].state_dict().values(),
            strict=True,
        ):
            assert torch.equal(a, b)
    assert set(first.exact[length.CHO]) == {4, 6}


def test_other_settings_train_afresh(store):
    length.run([length.SUTSKEVER], QUICK)
    other = length.run([length.SUTSKEVER], QUICK | {"steps": 4})
    assert other.loaded == []
    assert len(other.histories[length.SUTSKEVER]["loss"]) == 4


def test_without_a_store_every_run_trains(monkeypatch):
    monkeypatch.setenv("ATTN_COURSE_RESULTS", "")
    assert length.results_dir() is None
    assert length.run([length.SUTSKEVER], QUICK).loaded == []


def test_bad_names_and_settings_are_rejected(store):
    with pytest.raises(ValueError, match="unknown model 'GPT'"):
        length.run(["GPT"], QUICK)
    with pytest.raises(ValueError, match=r"unknown settings \['step'\]"):
        length.run([length.CHO], {"step": 3})


def test_models_share_width_and_seed():
    V = 13
    a = length.make_model(length.ATTENTION, V)
    b = length.make_model(length.ATTENTION, V)
    for x, y in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(x, y)  # the seed fixes the initial weights
    d = length.SETTINGS["d_hidden"]
    assert length.make_model(length.TRANSFORMER, V).encoder.d_enc == d
    assert length.make_model(length.CHO, V).decoder.rnn.hidden_size == d


def test_step_seconds_times_copies_and_leaves_the_models_alone(store):
    run = length.run([length.CHO, length.TRANSFORMER], QUICK)
    before = {n: [p.clone() for p in m.parameters()] for n, m in run.models.items()}
    times = length.step_seconds(run.models, steps=2, repeats=1, settings=QUICK)
    assert set(times) == {length.CHO, length.TRANSFORMER}
    assert all(0 < t < 60 for t in times.values())
    for name, model in run.models.items():
        for a, b in zip(before[name], model.parameters(), strict=True):
            assert torch.equal(a, b)


def test_the_key_follows_the_code_and_the_settings():
    key = length._key(length.CHO, length.SETTINGS)
    assert key == length._key(length.CHO, dict(length.SETTINGS))
    assert key != length._key(length.SUTSKEVER, length.SETTINGS)
    assert key != length._key(length.CHO, length.SETTINGS | {"lr": 1e-3})


def test_compare_trains_each_seed_with_its_models_recipe(store):
    """Chapter 5's comparison: one run per model and seed, the Transformer with the warm-up
    and Adam betas of RECIPES, the attention decoder at a constant rate; each run is what
    run() gives for the same settings (and is loaded from the store by it)."""
    quick = QUICK | {"steps": 6, "until_loss": None}
    result = length.compare(seeds=(0, 1), settings=quick)
    assert list(result) == [length.ATTENTION, length.TRANSFORMER]
    warmup = length.RECIPES[length.TRANSFORMER]["warmup"]
    lr = length.SETTINGS["lr"]
    for name, runs in result.items():
        assert len(runs) == 2
        rates = runs[0].histories[name]["lr"]
        if name == length.TRANSFORMER:  # rising over the warm-up: k / warmup of the peak
            assert rates == pytest.approx([lr * (k + 1) / warmup for k in range(6)])
        else:
            assert rates == pytest.approx([lr] * 6)
    losses = [r.histories[length.TRANSFORMER]["loss"] for r in result[length.TRANSFORMER]]
    assert losses[0] != losses[1]  # another seed: other weights and batches
    # the Transformer's run is train() with its paper's optimiser and no clipping; the
    # attention decoder's, with Chapter 2's (constant rate, gradients clipped to norm 1)
    for name, options in (
        (length.TRANSFORMER, {"warmup": warmup, "betas": (0.9, 0.98), "clip": None}),
        (length.ATTENTION, {"clip": 1.0}),
    ):
        model = length.make_model(name, reversal_task().vocab_size, length.SETTINGS)
        direct = train(model, reversal_task(), 6, 4, (4, 24), lr=lr, progress=False, **options)
        assert direct["loss"] == result[name][0].histories[name]["loss"]
    again = length.run(
        [length.TRANSFORMER],
        length.TO_FIT | length.RECIPES[length.TRANSFORMER] | {"seed": 1} | quick,
    )
    assert again.loaded == [length.TRANSFORMER]
    assert again.histories[length.TRANSFORMER]["loss"] == losses[1]


def test_compare_stops_each_run_when_it_fits(store):
    """With a threshold every run reaches at once (above chance loss, log V), a run stops as
    soon as its window is full: the window is 50 steps."""
    result = length.compare(
        [length.ATTENTION], seeds=(0,), settings=QUICK | {"steps": 80, "until_loss": 50.0}
    )
    assert len(result[length.ATTENTION][0].histories[length.ATTENTION]["loss"]) == 50
