"""The shared length experiment (Chapters 2 and 5): each model trained once per settings and
code version, stored, and loaded by the next chapter instead of being trained again."""

import pytest
import torch

from attn_course.experiments import length

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
