"""Chapter 1 library: tasks and batches, the encoder, the two fixed-context decoders, metrics,
training and evaluation. References are hand-computed cases and torch's own modules."""

import numpy as np
import pytest
import torch

from attn_course.answers.encoder_decoder import (
    cho_step,
    init_decoder_params,
    init_rnn_params,
    position_influence,
    rnn_forward,
    sutskever_step,
)
from attn_course.data import (
    BOS,
    EOS,
    PAD,
    date_task,
    make_batch,
    pad_pairs,
    reversal_task,
    sort_task,
)
from attn_course.experiments.recency import context_influence as rnn_position_influence
from attn_course.nn.decoders import ChoDecoder, Seq2Seq, SutskeverDecoder, greedy_decode
from attn_course.nn.encoders import Encoder
from attn_course.train import (
    evaluate,
    exact_match,
    sequence_loss,
    token_accuracy,
    train,
    warmup_factor,
)

torch.set_num_threads(1)  # tiny models: one thread is faster than two contending ones

DECODERS = [ChoDecoder, SutskeverDecoder]


# ---------------------------------------------------------------- tasks and batches


def test_reversal_pairs_and_vocab():
    task = reversal_task(n_symbols=5)
    assert task.vocab[:3] == ("<pad>", "<bos>", "<eos>") and task.vocab_size == 8
    src, tgt = task.sample(np.random.default_rng(0), 6)
    assert len(src) == 6 and tgt == src[::-1]
    assert all(3 <= i < 8 for i in src)
    assert task.decode(task.encode(["a", "c", "e"]) + [EOS, 4]) == ["a", "c", "e"]


def test_sort_and_date_pairs_by_hand():
    sort = sort_task()
    src, tgt = sort.sample(np.random.default_rng(1), 9)
    assert tgt == sorted(src)
    date = date_task()
    rng = np.random.default_rng(2)
    for _ in range(50):
        src, tgt = date.sample(rng, 99)  # length is ignored for dates
        day, month, year = "".join(date.decode(src)).split(" ")
        iso = "".join(date.decode(tgt))
        m = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
        assert iso == f"{int(year):04d}-{m.index(month) + 1:02d}-{int(day):02d}"
    assert "".join(date.decode(date.encode(list("25 nov 2026")))) == "25 nov 2026"


def test_pad_pairs_by_hand():
    batch = pad_pairs([([3, 4, 5], [5, 4, 3]), ([6], [6])])
    assert batch.src.tolist() == [[3, 4, 5], [6, PAD, PAD]]
    assert batch.src_mask.tolist() == [[True, True, True], [True, False, False]]
    assert batch.tgt_in.tolist() == [[BOS, 5, 4, 3], [BOS, 6, PAD, PAD]]
    assert batch.tgt_out.tolist() == [[5, 4, 3, EOS], [6, EOS, PAD, PAD]]
    assert batch.tgt_mask.tolist() == [[True] * 4, [True, True, False, False]]
    assert batch.src.dtype == torch.long and batch.src_mask.dtype == torch.bool


def test_make_batch_lengths_and_seed():
    task = reversal_task()
    batch = make_batch(task, 200, (4, 7), np.random.default_rng(0))
    lengths = batch.src_mask.sum(1)
    assert set(lengths.tolist()) == {4, 5, 6, 7}
    assert batch.src.shape == (200, 7) and batch.tgt_in.shape == (200, 8)
    assert torch.equal(batch.tgt_mask.sum(1), lengths + 1)  # targets + EOS
    fixed = make_batch(task, 5, 6, np.random.default_rng(0))
    assert fixed.src_mask.all()
    again = make_batch(task, 200, (4, 7), np.random.default_rng(0))
    assert all(torch.equal(a, b) for a, b in zip(batch, again, strict=True))
    with pytest.raises(ValueError, match="lo <= hi"):
        make_batch(task, 5, (7, 4), np.random.default_rng(0))


# ---------------------------------------------------------------- encoder


@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_encoder_shapes_and_padding(cell, bidirectional):
    torch.manual_seed(0)
    enc = Encoder(13, d_emb=6, d_hidden=5, cell=cell, bidirectional=bidirectional)
    d_enc = 10 if bidirectional else 5
    assert enc.d_enc == d_enc
    batch = pad_pairs([([3, 4, 5, 6], [6]), ([7, 8], [8])])
    h, C = enc(batch.src, batch.src_mask)
    assert h.shape == (2, 4, d_enc) and C.shape == (2, d_enc)
    assert torch.all(h[1, 2:] == 0)  # padded positions carry no state

    # Appending extra PAD changes neither C nor the real states.
    src = torch.cat([batch.src, torch.full((2, 3), PAD)], dim=1)
    h_pad, C_pad = enc(src, src != PAD)
    torch.testing.assert_close(C_pad, C)
    torch.testing.assert_close(h_pad[:, :4], h)

    # The short sequence encodes as if it were alone (no padding at all).
    alone = torch.tensor([[7, 8]])
    h_alone, C_alone = enc(alone, torch.ones_like(alone, dtype=torch.bool))
    torch.testing.assert_close(C[1], C_alone[0])
    torch.testing.assert_close(h[1, :2], h_alone[0])


def test_encoder_C_is_last_state_against_cell_by_hand():
    """C of a unidirectional GRU is the state after the last real token, computed step by step
    with torch.nn.GRUCell carrying the same weights; the backward half of a BiGRU is the
    reversed pass's state after the first token."""
    torch.manual_seed(1)
    enc = Encoder(10, d_emb=4, d_hidden=3, cell="gru", bidirectional=True)
    cells = []
    for suffix in ("", "_reverse"):
        cell = torch.nn.GRUCell(4, 3)
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, name).data.copy_(getattr(enc.rnn, f"{name}_l0{suffix}"))
        cells.append(cell)
    tokens = torch.tensor([3, 9, 4, 5, 8])
    x = enc.embedding(tokens)  # (5, 4)
    fwd = torch.zeros(1, 3)
    states_f = []
    for x_j in x:
        fwd = cells[0](x_j[None], fwd)
        states_f.append(fwd[0])
    bwd = torch.zeros(1, 3)
    for x_j in x.flip(0):
        bwd = cells[1](x_j[None], bwd)
    src = torch.cat([tokens, torch.tensor([PAD, PAD])])[None]
    h, C = enc(src, src != PAD)
    torch.testing.assert_close(C[0], torch.cat([states_f[-1], bwd[0]]))
    torch.testing.assert_close(h[0, :5, :3], torch.stack(states_f))


def test_encoder_rejects_bad_input():
    enc = Encoder(10, 4, 3)
    src = torch.tensor([[3, 4, 0]])
    with pytest.raises(ValueError, match=r"\(1, 3\).*\(1, 2\)"):
        enc(src, torch.ones(1, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="real tokens first"):
        enc(src, torch.tensor([[True, False, True]]))
    with pytest.raises(ValueError, match="all False"):
        enc(src, torch.zeros(1, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="cell must be one of"):
        Encoder(10, 4, 3, cell="transformer")


# ---------------------------------------------------------------- decoders


def _model(Decoder, task, d=16, cell="gru", bidirectional=False):
    enc = Encoder(task.vocab_size, 8, d, cell=cell, bidirectional=bidirectional)
    return Seq2Seq(enc, Decoder(task.vocab_size, 8, d, enc.d_enc, cell=cell))


def cell_like(rnn):
    """PyTorch's own one-step cell (nn.GRUCell / nn.LSTMCell) holding the weights of ``rnn``."""
    Cell = {torch.nn.GRU: torch.nn.GRUCell, torch.nn.LSTM: torch.nn.LSTMCell}[type(rnn)]
    cell = Cell(rnn.input_size, rnn.hidden_size).double()
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        getattr(cell, name).data.copy_(getattr(rnn, f"{name}_l0"))
    return cell


@pytest.mark.parametrize("Decoder", DECODERS)
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_decoder_forward_against_its_equations_with_torch_cells(Decoder, cell):
    """Teacher forcing, recomputed step by step from the two designs' equations with PyTorch's
    own cells: Cho s_t = f(s_{t-1}, [e; C]), logits W_o [s_t; e; C], s_0 = tanh(W_0 C);
    Sutskever s_t = f(s_{t-1}, e), logits W_o [s_t; e], s_0 = C (or tanh(W_0 C))."""
    torch.manual_seed(0)
    task = reversal_task()
    model = _model(Decoder, task, cell=cell).double()
    batch = make_batch(task, 3, (2, 5), np.random.default_rng(0))
    dec = model.decoder
    with torch.no_grad():
        logits = model(batch)
        h, C = model.encoder(batch.src, batch.src_mask)
        step = cell_like(dec.rnn)
        cho = Decoder is ChoDecoder
        s = torch.tanh(C @ dec.init.weight.T + dec.init.bias) if cho else C  # d_enc == d_hidden
        state = (s, torch.zeros_like(s)) if cell == "lstm" else s
        for t in range(batch.tgt_in.shape[1]):
            e = dec.embedding.weight[batch.tgt_in[:, t]]  # (B, d_emb)
            state = step(torch.cat([e, C], dim=-1) if cho else e, state)
            s = state[0] if cell == "lstm" else state
            features = torch.cat([s, e, C] if cho else [s, e], dim=-1)
            expected = features @ dec.out.weight.T + dec.out.bias  # (B, V)
            torch.testing.assert_close(logits[:, t], expected, rtol=1e-10, atol=1e-10)


def test_the_two_designs_read_C_differently():
    """Cho: changing C after s_0 still changes the outputs. Sutskever: C acts only through s_0."""
    torch.manual_seed(0)
    task = reversal_task()
    y = torch.tensor([[BOS, 3, 4, 5]])
    C1, C2 = torch.randn(1, 16), torch.randn(1, 16)
    for Decoder, depends in ((ChoDecoder, True), (SutskeverDecoder, False)):
        dec = Decoder(task.vocab_size, 8, 16, 16)
        s0 = dec.init_state(None, C1, None)
        out1, _ = dec.step(y[:, 0], s0, None, C1, None)
        out2, _ = dec.step(y[:, 0], s0, None, C2, None)  # same state, different C
        assert (not torch.allclose(out1, out2)) == depends, Decoder.__name__
    # The Sutskever decoder with d_context == d_hidden starts exactly from C.
    dec = SutskeverDecoder(task.vocab_size, 8, 16, 16)
    torch.testing.assert_close(dec.init_state(None, C1, None), C1)


def test_decoder_rejects_wrong_context_size():
    dec = ChoDecoder(10, 4, 8, d_context=6)
    with pytest.raises(ValueError, match=r"d_context=6.*\(2, 5\)"):
        dec(torch.zeros(2, 3, dtype=torch.long), None, torch.zeros(2, 5), None)


# ---------------------------------------------------------------- metrics and decoding


def test_metrics_by_hand():
    tgt = pad_pairs([([3], [5, 4, 3]), ([3], [6])])
    # tgt_out = [[5, 4, 3, EOS], [6, EOS, PAD, PAD]]
    pred = torch.tensor([[5, 4, 3, EOS, 7], [6, EOS, 9, 9, 9]])  # after EOS: ignored
    assert exact_match(pred, tgt.tgt_out, tgt.tgt_mask) == 1.0
    pred = torch.tensor([[5, 4, 3, 3], [6, EOS, 0, 0]])  # first misses its EOS
    assert exact_match(pred, tgt.tgt_out, tgt.tgt_mask) == 0.5
    assert exact_match(pred, tgt.tgt_out, tgt.tgt_mask, reduce=False).tolist() == [False, True]
    assert token_accuracy(pred, tgt.tgt_out, tgt.tgt_mask) == pytest.approx(5 / 6)
    short = torch.tensor([[5, 4], [6, EOS]])  # too short: the missing targets count as wrong
    assert exact_match(short, tgt.tgt_out, tgt.tgt_mask) == 0.5
    assert token_accuracy(short, tgt.tgt_out, tgt.tgt_mask) == pytest.approx(4 / 6)
    with pytest.raises(ValueError, match="pred"):
        exact_match(pred[0], tgt.tgt_out, tgt.tgt_mask)


def test_greedy_decode_feeds_back_argmax_and_pads_after_eos():
    """A decoder whose logits are a fixed function of y_prev: the output chain is checkable."""

    class Table(torch.nn.Module):  # y_prev -> next token: BOS->3, 3->4, 4->EOS, EOS->5
        nxt = {BOS: 3, 3: 4, 4: EOS, EOS: 5, 5: 5, PAD: 5}

        def init_state(self, h, C, src_mask):
            return C

        def step(self, y_prev, state, h, C, src_mask):
            logits = torch.full((y_prev.shape[0], 6), -1.0)
            logits[torch.arange(len(y_prev)), [self.nxt[int(y)] for y in y_prev]] = 1.0
            return logits, state

    class Const(torch.nn.Module):
        def forward(self, src, src_mask):
            return None, torch.zeros(src.shape[0], 1)

    model = Seq2Seq(Const(), Table())
    pred = greedy_decode(model, torch.ones(2, 3, dtype=torch.long), torch.ones(2, 3).bool(), 6)
    assert pred.tolist() == [[3, 4, EOS, PAD, PAD, PAD]] * 2


# ---------------------------------------------------------------- training


def test_sequence_loss_against_cross_entropy_on_real_tokens():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 5)
    tgt_out = torch.tensor([[1, 2, 3], [4, 2, 0]])
    mask = tgt_out != 0
    expected = torch.nn.functional.cross_entropy(logits[mask], tgt_out[mask])
    torch.testing.assert_close(sequence_loss(logits, tgt_out, mask), expected)


@pytest.mark.parametrize("Decoder", DECODERS)
def test_both_decoders_learn_short_reversal(Decoder):
    """A short run beats chance clearly: chance loss is log(V) ~ 2.56 and chance exact match
    at length 3 is (1/10)^3; after 250 steps the model reverses most length-3 inputs."""
    task = reversal_task()
    torch.manual_seed(0)
    model = _model(Decoder, task, d=32)
    history = train(
        model, task, steps=250, batch_size=32, lengths=3, lr=1e-2, seed=0, progress=False
    )
    assert len(history["loss"]) == 250
    assert np.mean(history["loss"][:10]) > 2.0
    assert np.mean(history["loss"][-20:]) < 0.5
    scores = evaluate(model, task, lengths=[3], n=200, seed=5)
    assert scores[3] > 0.6, scores


def test_training_is_deterministic_under_the_seed():
    task = reversal_task()
    runs = []
    for _ in range(2):
        torch.manual_seed(3)
        model = _model(ChoDecoder, task)
        runs.append(train(model, task, 15, 8, (2, 6), seed=7, progress=False)["loss"])
    assert runs[0] == runs[1]
    torch.manual_seed(3)
    model = _model(ChoDecoder, task)
    other = train(model, task, 15, 8, (2, 6), seed=8, progress=False)["loss"]
    assert other != runs[0]


def test_warmup_factor_is_the_papers_schedule_over_its_peak():
    """Vaswani et al.'s eq. 3, d_model**-0.5 * min(t**-0.5, t * W**-1.5) at t = step + 1,
    divided by its value at t = W; by hand for W = 4: 1/4, 2/4, 3/4, 1, then sqrt(4/5)."""
    W, d_model = 4, 512
    assert [warmup_factor(k, W) for k in range(5)] == pytest.approx(
        [0.25, 0.5, 0.75, 1.0, (4 / 5) ** 0.5]
    )

    def paper(t):
        return d_model**-0.5 * min(t**-0.5, t * W**-1.5)

    for step in range(40):
        assert warmup_factor(step, W) == pytest.approx(paper(step + 1) / paper(W))
    assert warmup_factor(0, 0) == warmup_factor(1000, 0) == 1.0


def test_train_uses_the_schedule_and_betas():
    task = reversal_task()
    torch.manual_seed(3)
    model = _model(ChoDecoder, task)
    history = train(
        model, task, 12, 8, (2, 6), lr=2e-3, warmup=5, betas=(0.9, 0.98), progress=False
    )
    assert history["lr"] == pytest.approx([2e-3 * warmup_factor(k, 5) for k in range(12)])
    # Adam's beta_2 reaches the optimiser: one step of torch's own Adam with those betas
    # from the same start gives the same weights
    torch.manual_seed(3)
    a, b = _model(ChoDecoder, task), _model(ChoDecoder, task)
    b.load_state_dict(a.state_dict())
    train(a, task, 1, 8, (2, 6), lr=1e-2, betas=(0.5, 0.7), clip=1e9, progress=False)
    batch = make_batch(task, 8, (2, 6), np.random.default_rng(0))
    optimizer = torch.optim.Adam(b.parameters(), lr=1e-2, betas=(0.5, 0.7))
    b.train()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        sequence_loss(b(batch), batch.tgt_out, batch.tgt_mask).backward()
    optimizer.step()
    for (name, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
        assert torch.allclose(p, q), name


def test_train_without_clipping_takes_adams_own_step():
    """clip=None: the step is torch's Adam on the raw gradients, whose norm is recorded. A
    clip below the norms rescales the gradients; Adam's first step does not see a scale,
    its later ones do (the steps' gradients are rescaled by different factors)."""
    task = reversal_task()
    torch.manual_seed(4)
    a, b, c = (_model(ChoDecoder, task) for _ in range(3))
    b.load_state_dict(a.state_dict())
    c.load_state_dict(a.state_dict())
    history = train(a, task, 1, 8, (2, 6), lr=1e-1, clip=None, progress=False)
    batch = make_batch(task, 8, (2, 6), np.random.default_rng(0))
    optimizer = torch.optim.Adam(b.parameters(), lr=1e-1)
    b.train()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        sequence_loss(b(batch), batch.tgt_out, batch.tgt_mask).backward()
    norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in b.parameters()]))
    optimizer.step()
    assert history["grad_norm"] == [pytest.approx(norm.item(), rel=1e-5)]
    for (name, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
        assert torch.allclose(p, q), name
    more = train(a, task, 3, 8, (2, 6), lr=1e-2, clip=None, seed=1, progress=False)
    train(c, task, 1, 8, (2, 6), lr=1e-1, clip=None, progress=False)  # a's first step
    clipped = train(c, task, 3, 8, (2, 6), lr=1e-2, clip=1e-3, seed=1, progress=False)
    assert min(more["grad_norm"]) > 1e-3  # so every step of c is rescaled
    assert more["loss"][0] == clipped["loss"][0] and more["loss"][2] != clipped["loss"][2]


def test_train_until_loss_stops_where_the_window_first_falls_below():
    """The stopped run is the prefix of the full run with the same seed, cut at the first
    step whose last-5-steps mean is below the threshold (found here from the full run)."""
    task = reversal_task()
    torch.manual_seed(1)
    model = _model(ChoDecoder, task)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    full = train(model, task, 60, 16, 3, lr=1e-2, seed=2, progress=False)["loss"]
    means = [np.mean(full[k - 4 : k + 1]) for k in range(4, 60)]
    threshold = float(np.median(means))
    first = 4 + next(k for k, m in enumerate(means) if m < threshold)
    model.load_state_dict(start)
    stopped = train(
        model, task, 60, 16, 3, lr=1e-2, seed=2, until_loss=threshold, window=5, progress=False
    )["loss"]
    assert stopped == full[: first + 1]


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"warmup": -1}, "warmup must be 0"),
        ({"until_loss": 0.0}, "until_loss must be a loss above 0"),
        ({"window": 0}, "window must be at least 1"),
        ({"clip": 0.0}, r"clip must be a gradient norm above 0 \(or None: no clipping\)"),
    ],
)
def test_train_rejects_bad_options(bad, message):
    task = reversal_task()
    model = _model(ChoDecoder, task)
    with pytest.raises(ValueError, match=message):
        train(model, task, 5, 4, 3, progress=False, **bad)


def test_evaluate_returns_one_score_per_length_and_is_reproducible():
    task = reversal_task()
    torch.manual_seed(0)
    model = _model(SutskeverDecoder, task)
    first = evaluate(model, task, lengths=[2, 5], n=20, seed=1)
    assert list(first) == [2, 5] and all(0.0 <= v <= 1.0 for v in first.values())
    assert evaluate(model, task, lengths=[5], n=20, seed=1) == {5: first[5]}


# ---------------------------------------------------------------- the NumPy twins (assignment)


def _torch_rnn(W_x, W_h, b):
    """torch.nn.RNN (tanh) carrying the NumPy weights; torch stores them transposed."""
    rnn = torch.nn.RNN(W_x.shape[0], W_x.shape[1], batch_first=True).double()
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.from_numpy(W_x.T))
        rnn.weight_hh_l0.copy_(torch.from_numpy(W_h.T))
        rnn.bias_ih_l0.copy_(torch.from_numpy(b))
        rnn.bias_hh_l0.zero_()
    return rnn


def test_rnn_forward_by_hand_in_one_dimension():
    x = np.array([[1.0], [0.0], [-1.0]])
    h, C = rnn_forward(x, np.array([[1.0]]), np.array([[0.5]]), np.zeros(1))
    h1 = np.tanh(1.0)
    h2 = np.tanh(0.5 * h1)
    h3 = np.tanh(-1.0 + 0.5 * h2)
    np.testing.assert_allclose(h[:, 0], [h1, h2, h3])
    np.testing.assert_allclose(C, [h3])


def test_rnn_forward_against_torch_rnn():
    W_x, W_h, b = init_rnn_params(4, 5, seed=1)
    b = np.random.default_rng(2).normal(size=5)
    rnn = _torch_rnn(W_x, W_h, b)
    x = np.random.default_rng(3).normal(size=(2, 6, 4))  # a batch of two sequences
    h0 = np.random.default_rng(4).normal(size=(2, 5))
    for init in (None, h0):
        h, C = rnn_forward(x, W_x, W_h, b, h0=init)
        t_init = None if init is None else torch.from_numpy(init)[None]
        h_ref, C_ref = rnn(torch.from_numpy(x), t_init)
        np.testing.assert_allclose(h, h_ref.detach().numpy(), atol=1e-12)
        np.testing.assert_allclose(C, C_ref[0].detach().numpy(), atol=1e-12)
    h1, C1 = rnn_forward(x[1], W_x, W_h, b)  # no batch axis
    np.testing.assert_allclose(C1, rnn_forward(x, W_x, W_h, b)[1][1])
    with pytest.raises(ValueError, match=r"\(6, 3\).*\(4, 5\)"):
        rnn_forward(x[0, :, :3], W_x, W_h, b)


def _linear(weight_blocks, bias):
    """torch.nn.Linear whose weight is the row-stacked NumPy blocks, transposed."""
    W = np.concatenate(weight_blocks, axis=0)
    layer = torch.nn.Linear(*W.shape).double()
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(W.T))
        layer.bias.copy_(torch.from_numpy(bias))
    return layer


@pytest.mark.parametrize("design", ["cho", "sutskever"])
def test_decoder_steps_against_torch_rnn_cell(design):
    d_e, d_s, d_c, V = 3, 4, 5, 6
    p = init_decoder_params(d_e, d_s, d_c, V, seed=0, design=design)
    rng = np.random.default_rng(1)
    p["b"], p["c"] = rng.normal(size=d_s), rng.normal(size=V)
    e, s_prev, C = rng.normal(size=(2, d_e)), rng.normal(size=(2, d_s)), rng.normal(size=(2, d_c))
    cho = design == "cho"
    # the cell reads [e; C] (Cho) or e (Sutskever); the output layer reads [s; e; C] or [s; e]
    W_in, V_in, inp = [p["W_e"]], [p["V_s"], p["V_e"]], [e]
    if cho:
        W_in, V_in, inp = W_in + [p["W_c"]], V_in + [p["V_c"]], inp + [C]
    cell = torch.nn.RNNCell(sum(w.shape[0] for w in W_in), d_s).double()
    with torch.no_grad():
        cell.weight_ih.copy_(torch.from_numpy(np.concatenate(W_in).T))
        cell.weight_hh.copy_(torch.from_numpy(p["W_s"].T))
        cell.bias_ih.copy_(torch.from_numpy(p["b"]))
        cell.bias_hh.zero_()
    inp = torch.from_numpy(np.concatenate(inp, axis=-1))
    s_ref = cell(inp, torch.from_numpy(s_prev))
    logits_ref = _linear(V_in, p["c"])(torch.cat([s_ref, inp], dim=-1))
    logits, s = cho_step(e, s_prev, C, p) if cho else sutskever_step(e, s_prev, p)
    np.testing.assert_allclose(s, s_ref.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(logits, logits_ref.detach().numpy(), atol=1e-12)


def test_numpy_position_influence_by_hand_and_against_autograd():
    # W_h = 0: C = tanh(x_n W_x) sees only the last input, with derivative (1 - C^2) W_x
    W_x = np.array([[2.0, 0.0], [0.0, 1.0]])
    x = np.array([[0.3, 0.1], [0.5, -0.2], [0.1, 0.4]])
    influence = position_influence(lambda x: rnn_forward(x, W_x, 0 * W_x, np.zeros(2))[1], x)
    C = np.tanh(x[-1] @ W_x)
    expected_last = np.linalg.norm((1 - C**2)[None, :] * W_x)  # rows k of dC/dx_n
    np.testing.assert_allclose(influence, [0.0, 0.0, expected_last], atol=1e-8)

    W_x, W_h, b = init_rnn_params(3, 4, seed=5, scale=1.5)
    rnn = _torch_rnn(W_x, W_h, b)
    x = np.random.default_rng(6).normal(size=(7, 3))
    J = torch.autograd.functional.jacobian(lambda t: rnn(t[None])[1][0, 0], torch.from_numpy(x))
    expected = J.pow(2).sum(dim=(0, 2)).sqrt().numpy()  # J: (d_h, n, d_x)
    got = position_influence(lambda x: rnn_forward(x, W_x, W_h, b)[1], x)
    np.testing.assert_allclose(got, expected, rtol=1e-6)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_torch_position_influence_against_finite_differences(bidirectional):
    torch.manual_seed(0)
    enc = Encoder(10, d_emb=3, d_hidden=4, cell="gru", bidirectional=bidirectional).double()
    batch = pad_pairs([([3, 4, 5, 6, 7], [3]), ([8, 9], [8])])
    got = rnn_position_influence(enc, batch.src, batch.src_mask)
    assert got.shape == (2, 5) and torch.all(got[1, 2:] == 0)
    for b, n in enumerate(batch.src_mask.sum(1).tolist()):
        x = enc.embed(batch.src[b : b + 1, :n]).detach()[0].numpy()
        mask = torch.ones(1, n, dtype=torch.bool)

        def encode(x, mask=mask):
            with torch.no_grad():
                return enc.encode(torch.from_numpy(x)[None], mask)[1][0].numpy()

        np.testing.assert_allclose(got[b, :n].numpy(), position_influence(encode, x), rtol=1e-6)
