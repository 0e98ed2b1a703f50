"""RNN and LSTM layers: gradients against central differences, an independent LSTM forward,
truncated BPTT against an independent construction, PyTorch as a reference when installed,
gradient-flow diagnostics and the recurrent model builder."""

from __future__ import annotations

import numpy as np
import pytest

from ann.activations import ELEMENTWISE, make_activation
from ann.diagnostics import gradient_flow
from ann.gradcheck import numerical_grad, relative_error
from ann.recurrent import LSTM, RNN, build_recurrent

TOL = 1e-6
N_BATCH, N_STEPS, N_IN, H = 2, 5, 3, 4


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _check_stack(layers, x: np.ndarray, rng: np.random.Generator) -> dict[str, float]:
    """Errors of every parameter of every layer and of the input, for L = sum(w * stack(x))."""

    def run(inp):
        for layer in layers:
            inp = layer.forward(inp)
        return inp

    w = rng.standard_normal(run(x).shape)
    loss = lambda _=None: float(np.sum(w * run(x)))  # noqa: E731
    d = w
    for layer in reversed(layers):
        d = layer.backward(d)
    errors = {"x": relative_error(d, numerical_grad(loss, x))}
    for n, layer in enumerate(layers):
        analytic = {k: v.copy() for k, v in layer.grads.items()}
        for k, p in layer.params.items():
            errors[f"{n}.{k}"] = relative_error(analytic[k], numerical_grad(loss, p))
    return errors


def _assert_small(errors: dict[str, float]) -> None:
    bad = {k: e for k, e in errors.items() if not e < TOL}
    assert not bad, bad


# --- gradients, full BPTT ---------------------------------------------------------------------

@pytest.mark.parametrize("activation", sorted(ELEMENTWISE))
@pytest.mark.parametrize("return_sequences", [False, True])
def test_rnn_gradients(activation, return_sequences):
    rng = _rng(1)
    layer = RNN(N_IN, H, rng=rng, activation=activation, return_sequences=return_sequences)
    layer.params["b_h"][:] = rng.normal(0, 0.5, H)
    x = rng.standard_normal((N_BATCH, N_STEPS, N_IN))
    _assert_small(_check_stack([layer], x, rng))


@pytest.mark.parametrize("return_sequences", [False, True])
def test_lstm_gradients(return_sequences):
    rng = _rng(2)
    layer = LSTM(N_IN, H, rng=rng, forget_bias=1.0, return_sequences=return_sequences)
    layer.params["b"][:] += rng.normal(0, 0.5, 4 * H)
    x = rng.standard_normal((N_BATCH, N_STEPS, N_IN))
    _assert_small(_check_stack([layer], x, rng))


@pytest.mark.parametrize("kinds", [("rnn", "rnn"), ("lstm", "lstm"), ("lstm", "rnn")])
@pytest.mark.parametrize("last_sequences", [False, True])
def test_stacked_gradients(kinds, last_sequences):
    """Two stacked layers: the lower one's backward receives dy (n_batch, n_steps, H)."""
    rng = _rng(3)
    make = {"rnn": lambda n_in, seq: RNN(n_in, H, rng=rng, return_sequences=seq),
            "lstm": lambda n_in, seq: LSTM(n_in, H, rng=rng, return_sequences=seq)}
    layers = [make[kinds[0]](N_IN, True), make[kinds[1]](H, last_sequences)]
    x = rng.standard_normal((N_BATCH, N_STEPS, N_IN))
    _assert_small(_check_stack(layers, x, rng))


# --- independent references ---------------------------------------------------------------------

def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _ref_lstm(params, x, h0=None, c0=None):
    """A plain per-step LSTM with four separate gate matrices; returns every h_t and c_t."""
    W_x, W_h, b = params["W_x"], params["W_h"], params["b"]
    n_hidden = W_h.shape[0]
    blocks = {g: slice(k * n_hidden, (k + 1) * n_hidden) for k, g in enumerate("fiog")}
    Wx = {g: W_x[:, s] for g, s in blocks.items()}
    Wh = {g: W_h[:, s] for g, s in blocks.items()}
    bb = {g: b[s] for g, s in blocks.items()}
    h = np.zeros((x.shape[0], n_hidden)) if h0 is None else h0
    c = np.zeros((x.shape[0], n_hidden)) if c0 is None else c0
    hs, cs, gates = [], [], {g: [] for g in "fiog"}
    for t in range(x.shape[1]):
        xt = x[:, t]
        f = _sigmoid(xt @ Wx["f"] + h @ Wh["f"] + bb["f"])
        i = _sigmoid(xt @ Wx["i"] + h @ Wh["i"] + bb["i"])
        o = _sigmoid(xt @ Wx["o"] + h @ Wh["o"] + bb["o"])
        g = np.tanh(xt @ Wx["g"] + h @ Wh["g"] + bb["g"])
        c = f * c + i * g
        h = o * np.tanh(c)
        hs.append(h)
        cs.append(c)
        for name, v in zip("fiog", (f, i, o, g)):
            gates[name].append(v)
    return np.stack(hs, 1), np.stack(cs, 1), {k: float(np.mean(v)) for k, v in gates.items()}


def _ref_rnn(params, x, activation, h0=None):
    act = make_activation(activation)
    h = np.zeros((x.shape[0], params["W_hh"].shape[0])) if h0 is None else h0
    hs = []
    for t in range(x.shape[1]):
        h = act.apply(x[:, t] @ params["W_xh"] + h @ params["W_hh"] + params["b_h"])
        hs.append(h)
    return np.stack(hs, 1)


def test_lstm_forward_matches_reference_loop():
    rng = _rng(4)
    layer = LSTM(N_IN, H, rng=rng, forget_bias=0.7, return_sequences=True)
    layer.params["b"][:] += rng.normal(0, 0.5, 4 * H)
    x = rng.standard_normal((3, 6, N_IN))
    hs, _, gates = _ref_lstm(layer.params, x)
    np.testing.assert_allclose(layer.forward(x), hs, rtol=1e-12, atol=1e-12)
    for k in "fiog":
        assert layer.gate_means[k] == pytest.approx(gates[k], abs=1e-12)
    last = LSTM(N_IN, H, rng=_rng(4), forget_bias=0.7)
    last.params = {k: v.copy() for k, v in layer.params.items()}
    np.testing.assert_allclose(last.forward(x), hs[:, -1], rtol=1e-12, atol=1e-12)


def test_forget_bias_and_init():
    layer = LSTM(2, 3, rng=_rng(0), forget_bias=2.5)
    np.testing.assert_array_equal(layer.params["b"], [2.5] * 3 + [0.0] * 9)
    W_h = layer.params["W_h"]
    np.testing.assert_allclose(W_h @ W_h.T, np.eye(3), atol=1e-12)    # orthogonal rows
    rnn = RNN(2, 3, rng=_rng(0))
    np.testing.assert_allclose(rnn.params["W_hh"] @ rnn.params["W_hh"].T, np.eye(3), atol=1e-12)


# --- truncated BPTT -------------------------------------------------------------------------------

def _window_starts(n_steps, k):
    return sorted({max(s, 0) for s in range(n_steps - k, -k, -k)})


def _ref_layer(layer, x, state):
    """Independent per-step forward of one layer from an entering state (h0, c0)."""
    if isinstance(layer, LSTM):
        hs, cs, _ = _ref_lstm(layer.params, x, *state)
        return hs, cs
    return _ref_rnn(layer.params, x, layer.activation, state[0]), None


@pytest.mark.parametrize("kinds", [("rnn",), ("lstm",), ("lstm", "rnn"), ("rnn", "lstm")])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_truncated_bptt_against_restarted_windows(kinds, return_sequences):
    """Truncated BPTT is not the gradient of the loss, so it is checked against the true
    gradient of a different function: the windows are [T-k, T), [T-2k, T-k), ... (the first
    one partial); the state entering each window (in every layer of the stack) is computed once
    with the base parameters and then fed in as a constant, and every window is re-run from
    those constant states with an independent per-step reference forward. At the base
    parameters this gives the same outputs, and the central differences of sum(w * outputs)
    wrt every parameter and input are exactly the truncated gradients: the signal cannot
    cross a window boundary, while W_hh still acts on the constant entering state."""
    rng = _rng(5)
    T, k = 7, 3
    cls = {"rnn": RNN, "lstm": LSTM}
    layers = []
    for n, kind in enumerate(kinds):
        seq = return_sequences or n < len(kinds) - 1
        layers.append(cls[kind](N_IN if n == 0 else H, H, rng=rng, truncate=k,
                                return_sequences=seq))
    x = rng.standard_normal((N_BATCH, T, N_IN))
    out = x
    for layer in layers:
        out = layer.forward(out)
    w = rng.standard_normal(out.shape)
    dx = w
    for layer in reversed(layers):
        dx = layer.backward(dx)
    analytic = [{key: v.copy() for key, v in layer.grads.items()} for layer in layers]
    starts = _window_starts(T, k)
    zeros = np.zeros((N_BATCH, H))
    frozen = []            # per layer: window start -> entering (h, c), at the base parameters
    inp = x
    for layer in layers:
        hs, cs = _ref_layer(layer, inp, (None, None))
        frozen.append({s: (zeros, zeros) if s == 0 else
                       (hs[:, s - 1].copy(), None if cs is None else cs[:, s - 1].copy())
                       for s in starts})
        inp = hs

    def windowed_loss(_=None):
        pieces = []
        for s, e in zip(starts, starts[1:] + [T]):
            inp = x[:, s:e]
            for layer, states in zip(layers, frozen):
                inp = _ref_layer(layer, inp, states[s])[0]
            pieces.append(inp)
        hs = np.concatenate(pieces, axis=1)
        return float(np.sum(w * (hs if return_sequences else hs[:, -1])))

    assert windowed_loss() == pytest.approx(float(np.sum(w * out)), rel=1e-12)
    errors = {"x": relative_error(dx, numerical_grad(windowed_loss, x))}
    for n, layer in enumerate(layers):
        for key, p in layer.params.items():
            errors[f"{n}.{key}"] = relative_error(analytic[n][key],
                                                  numerical_grad(windowed_loss, p))
    _assert_small(errors)
    # and it is really truncated: it differs from full BPTT
    full = w
    for layer in layers:
        layer.truncate = None
    inp = x
    for layer in layers:
        inp = layer.forward(inp)
    for layer in reversed(layers):
        full = layer.backward(full)
    assert relative_error(full, dx) > 1e-3


@pytest.mark.parametrize("cls", [RNN, LSTM])
def test_truncate_longer_than_sequence_is_full_bptt(cls):
    rng = _rng(6)
    x = rng.standard_normal((N_BATCH, N_STEPS, N_IN))
    a = cls(N_IN, H, rng=_rng(0), truncate=N_STEPS, return_sequences=True)
    b = cls(N_IN, H, rng=_rng(0), return_sequences=True)
    w = rng.standard_normal((N_BATCH, N_STEPS, H))
    a.forward(x)
    b.forward(x)
    np.testing.assert_allclose(a.backward(w), b.backward(w))
    for key in a.grads:
        np.testing.assert_allclose(a.grads[key], b.grads[key])
    assert a.grad_flow[0] > 0  # the signal from the last step reaches the first one


# --- PyTorch as a reference ---------------------------------------------------------------------

def _to_torch_order(M, n_hidden):
    """Our gate blocks f, i, o, g along the last axis -> torch's i, f, g, o."""
    f, i, o, g = (M[..., k * n_hidden:(k + 1) * n_hidden] for k in range(4))
    return np.concatenate([i, f, g, o], axis=-1)


@pytest.mark.parametrize("kind", ["lstm", "rnn_tanh", "rnn_relu"])
def test_against_torch(kind):
    torch = pytest.importorskip("torch")
    rng = _rng(7)
    x = rng.standard_normal((3, 6, N_IN))
    if kind == "lstm":
        layer = LSTM(N_IN, H, rng=rng, return_sequences=True)
        layer.params["b"][:] += rng.normal(0, 0.5, 4 * H)
        net = torch.nn.LSTM(N_IN, H, batch_first=True, dtype=torch.float64)
        to_t = lambda M: torch.tensor(_to_torch_order(M, H).T.copy())  # noqa: E731
        names = {"W_x": "weight_ih_l0", "W_h": "weight_hh_l0", "b": "bias_ih_l0"}
    else:
        act = kind.split("_")[1]
        layer = RNN(N_IN, H, rng=rng, activation=act, return_sequences=True)
        layer.params["b_h"][:] = rng.normal(0, 0.5, H)
        net = torch.nn.RNN(N_IN, H, nonlinearity=act, batch_first=True, dtype=torch.float64)
        to_t = lambda M: torch.tensor(M.T.copy())  # noqa: E731
        names = {"W_xh": "weight_ih_l0", "W_hh": "weight_hh_l0", "b_h": "bias_ih_l0"}
    with torch.no_grad():
        for ours, theirs in names.items():
            getattr(net, theirs).copy_(to_t(layer.params[ours]))
        net.bias_hh_l0.zero_()
    net.bias_hh_l0.requires_grad_(False)
    xt = torch.tensor(x, requires_grad=True)
    w = rng.standard_normal((3, 6, H))
    out_t, _ = net(xt)
    (out_t * torch.tensor(w)).sum().backward()
    out = layer.forward(x)
    dx = layer.backward(w)
    np.testing.assert_allclose(out, out_t.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-9, atol=1e-12)
    for ours, theirs in names.items():
        expected = getattr(net, theirs).grad.numpy()
        np.testing.assert_allclose(to_t(layer.grads[ours]).numpy(), expected,
                                   rtol=1e-9, atol=1e-12)


# --- gradient flow, gate means, buffers, dtypes ----------------------------------------------

def test_grad_flow_shape_last_step_and_vanishing():
    rng = _rng(8)
    T = 12
    layer = RNN(N_IN, H, rng=rng, activation="tanh")
    layer.params["W_hh"] *= 0.1
    x = rng.standard_normal((N_BATCH, T, N_IN))
    layer.forward(x)
    dy = rng.standard_normal((N_BATCH, H))
    layer.backward(dy)
    flow = layer.grad_flow
    assert flow.shape == (T,)
    assert flow[-1] == pytest.approx(np.linalg.norm(dy))   # dLoss/dh_T = dy
    assert np.all(np.diff(flow) > 0)                        # decays going back in time
    assert flow[0] / flow[-1] < 1e-6


def test_buffers_do_not_alias_outputs_and_follow_shapes():
    rng = _rng(9)
    layer = LSTM(N_IN, H, rng=rng, return_sequences=True)
    xa = rng.standard_normal((2, 5, N_IN))
    xb = rng.standard_normal((3, 4, N_IN))
    ya = layer.forward(xa)
    keep = ya.copy()
    layer.forward(xa[:, ::-1])
    np.testing.assert_array_equal(ya, keep)                 # outputs are fresh arrays
    yb = layer.forward(xb)
    assert yb.shape == (3, 4, H)
    np.testing.assert_allclose(layer.forward(xa), keep)     # back to the first shape


def test_float32_layers():
    rng = _rng(10)
    x = rng.standard_normal((2, 5, N_IN))
    for cls in (RNN, LSTM):
        layer = cls(N_IN, H, rng=rng, dtype=np.float32)
        assert all(v.dtype == np.float32 for v in layer.params.values())
        y = layer.forward(x)
        dx = layer.backward(np.ones_like(y))
        assert y.dtype == dx.dtype == np.float32
        assert all(g.dtype == np.float32 and np.all(np.isfinite(g)) for g in layer.grads.values())
        ref = cls(N_IN, H, rng=_rng(0))                 # float64 twin with the same weights
        ref.params = {k: v.astype(np.float64) for k, v in layer.params.items()}
        ref.grads = {k: np.zeros_like(v) for k, v in ref.params.items()}
        np.testing.assert_allclose(y, ref.forward(x), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(dx, ref.backward(np.ones(y.shape)), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kwargs", [
    {"n_hidden": 0}, {"truncate": 0}, {"truncate": 1.5}, {"n_in": -1}, {"dtype": np.int64},
    {"activation": "softmax"}, {"activation": "prelu"}, {"activation": "nope"},
])
def test_invalid_arguments(kwargs):
    args = {"n_in": 2, "n_hidden": 3, "rng": _rng()} | kwargs
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        RNN(**args)
    if "activation" not in kwargs:
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            LSTM(**args)


# --- models and diagnostics -----------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_build_recurrent_shapes_and_model_gradients(kind):
    rng = _rng(11)
    x = rng.standard_normal((3, 4, 2))
    clf = build_recurrent(kind, 2, [3, 4], 5, task="classification", rng=rng)
    assert clf.forward(x).shape == (3, 5)
    assert [getattr(l, "return_sequences", None) for l in clf.layers] == [True, False, None]
    reg = build_recurrent(kind, 2, 3, 2, task="regression", rng=rng, many_to_many=True,
                          truncate=2)
    y = rng.standard_normal((3, 4, 2))
    assert reg.forward(x).shape == (3, 4, 2)
    full = build_recurrent(kind, 2, [3, 3], 2, task="regression", rng=rng, many_to_many=True)
    full.loss(x, y)
    full.backward()
    analytic = {k: v.copy() for k, v in full.grads().items()}
    for name, p in full.params().items():
        num = numerical_grad(lambda _: full.loss(x, y), p)
        assert relative_error(analytic[name], num) < TOL, name


def test_build_recurrent_rejects_bad_arguments():
    rng = _rng()
    with pytest.raises(ValueError, match="activation"):
        build_recurrent("lstm", 2, 3, 1, task="regression", rng=rng, activation="relu")
    with pytest.raises(ValueError, match="kind"):
        build_recurrent("gru", 2, 3, 1, task="regression", rng=rng)
    with pytest.raises(ValueError, match="hidden"):
        build_recurrent("rnn", 2, [3, 0], 1, task="regression", rng=rng)
    with pytest.raises(ValueError, match="activation"):
        build_recurrent("rnn", 2, 3, 1, task="regression", rng=rng, activation="softmax")


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_gradient_flow_diagnostic(kind):
    rng = _rng(12)
    model = build_recurrent(kind, 2, [4, 3], 1, task="regression", rng=rng)
    X = rng.standard_normal((5, 6, 2))
    y = rng.standard_normal((5, 1))
    weights = model.get_weights()
    model.loss(X[:2], y[:2])
    model.backward()
    grads = {k: v.copy() for k, v in model.grads().items()}
    out = gradient_flow(model, X, y)
    assert out["grad_norms"].shape == (6,)
    assert out["grad_flow_ratio"] == pytest.approx(out["grad_norms"][0] / out["grad_norms"][-1])
    for k, v in model.get_weights().items():
        np.testing.assert_array_equal(v, weights[k])
    for k, v in model.grads().items():
        np.testing.assert_array_equal(v, grads[k])
    if kind == "lstm":
        assert set(out["gate_means"]) == set("fiog")
        assert all(0 < out["gate_means"][g] < 1 for g in "fio")
    else:
        assert out["gate_means"] == {}
