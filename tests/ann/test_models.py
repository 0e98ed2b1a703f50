"""Sequential and the model builders."""

import sys
import types

import numpy as np
import pytest

from ann.activations import PReLU, ReLU, Tanh
from ann.gradcheck import check_model
from ann.layers import Dense
from ann.losses import MeanSquaredError, SigmoidBinaryCrossEntropy, SoftmaxCrossEntropy
from ann.models import Sequential, build_mlp, build_model

TOL = 1e-6


def _mlp(activation="tanh", task="classification", n_out=3, seed=0, dtype=np.float64, hidden=(5, 4)):
    return build_mlp(4, list(hidden), n_out, activation=activation, task=task,
                     rng=np.random.default_rng(seed), dtype=dtype)


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu", "prelu", "elu", "selu", "gelu", "mish"])
def test_mlp_gradients_classification(activation):
    rng = np.random.default_rng(1)
    model = _mlp(activation)
    for p in model.params().values():  # non-zero biases and slopes exercise every term
        p += 0.1 * rng.standard_normal(p.shape)
    x, y = rng.standard_normal((6, 4)), rng.integers(0, 3, size=6)
    errors = check_model(model, x, y)
    assert set(errors) == set(model.params())
    assert max(errors.values()) < TOL, errors


def test_mlp_gradients_regression():
    rng = np.random.default_rng(2)
    model = _mlp("swish", task="regression", n_out=2)
    assert isinstance(model.loss_fn, MeanSquaredError)
    x, y = rng.standard_normal((5, 4)), rng.standard_normal((5, 2))
    assert max(check_model(model, x, y).values()) < TOL


def test_sequential_with_sigmoid_binary_cross_entropy():
    rng = np.random.default_rng(3)
    model = Sequential([Dense(4, 3, rng=rng), ReLU(), Dense(3, 1, rng=rng)], SigmoidBinaryCrossEntropy())
    x, y = rng.standard_normal((6, 4)), rng.integers(0, 2, size=6)
    assert max(check_model(model, x, y).values()) < TOL
    assert model.predict(x).shape == (6, 1)
    assert set(np.unique(model.predict_labels(x))) <= {0, 1}


def test_build_mlp_structure():
    model = build_mlp(4, [5, 6], 3, activation="prelu", task="classification", rng=np.random.default_rng(0))
    kinds = [type(layer) for layer in model.layers]
    assert kinds == [Dense, PReLU, Dense, PReLU, Dense]
    assert model.layers[1].params["alpha"].shape == (5,)
    assert model.layers[3].params["alpha"].shape == (6,)
    assert [layer.init for layer in model.layers if isinstance(layer, Dense)] == ["he_normal", "he_normal", "glorot_uniform"]
    assert isinstance(model.loss_fn, SoftmaxCrossEntropy)
    assert model.n_params == (4 * 5 + 5) + 5 + (5 * 6 + 6) + 6 + (6 * 3 + 3)
    assert list(model.params()) == ["0.W", "0.b", "1.alpha", "2.W", "2.b", "3.alpha", "4.W", "4.b"]
    assert list(model.grads()) == list(model.params())

    linear = build_mlp(4, [], 2, activation="tanh", task="classification", rng=np.random.default_rng(0))
    assert [type(layer) for layer in linear.layers] == [Dense]


def test_build_mlp_is_deterministic_and_honours_dtype():
    a, b = _mlp(seed=7), _mlp(seed=7)
    for k, v in a.get_weights().items():
        np.testing.assert_array_equal(v, b.get_weights()[k])
    m32 = _mlp("prelu", dtype=np.float32)
    assert all(v.dtype == np.float32 for v in m32.params().values())
    x = np.ones((2, 4), dtype=np.float32)
    assert m32.forward(x).dtype == np.float32
    m32.loss(x, np.array([0, 1]))
    m32.backward()
    assert all(v.dtype == np.float32 for v in m32.grads().values())


def test_params_are_live_and_weights_are_copies():
    rng = np.random.default_rng(4)
    model = _mlp()
    x, y = rng.standard_normal((3, 4)), np.array([0, 1, 2])
    saved = model.get_weights()
    before = model.loss(x, y)
    model.backward()
    grads = model.grads()
    g0 = grads["0.W"].copy()
    for k, p in model.params().items():  # one SGD step in place through the live dicts
        p -= 0.1 * grads[k]
    after = model.loss(x, y)
    assert after < before
    for k, v in saved.items():  # the copies did not move with the parameters
        assert not np.array_equal(v, model.params()[k])
    model.backward()
    assert model.grads()["0.W"] is grads["0.W"]  # the same live array, overwritten
    assert not np.array_equal(grads["0.W"], g0)
    model.set_weights(saved)
    assert model.loss(x, y) == pytest.approx(before)
    saved["0.W"][:] = 0.0
    assert not np.all(model.params()["0.W"] == 0.0)


def test_set_weights_rejects_mismatches():
    model = _mlp()
    w = model.get_weights()
    with pytest.raises(ValueError, match="missing"):
        model.set_weights({k: v for k, v in w.items() if k != "0.b"})
    w["0.W"] = np.zeros((2, 2))
    with pytest.raises(ValueError, match="0.W"):
        model.set_weights(w)


def test_predict_and_labels():
    rng = np.random.default_rng(5)
    model = _mlp()
    x = rng.standard_normal((4, 4))
    p = model.predict(x)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    np.testing.assert_array_equal(model.predict_labels(x), p.argmax(axis=1))
    reg = _mlp(task="regression", n_out=1)
    np.testing.assert_array_equal(reg.predict(x), reg.forward(x))


def test_build_model_dispatch(monkeypatch):
    model = build_model("mlp", 4, [3], 2, activation="relu", task="classification", rng=np.random.default_rng(0))
    assert [type(layer) for layer in model.layers] == [Dense, ReLU, Dense]

    calls = []
    fake = types.ModuleType("ann.recurrent")

    def build_recurrent(kind, n_in, hidden, n_out, **kwargs):
        calls.append((kind, n_in, hidden, n_out, kwargs))
        return "built"

    fake.build_recurrent = build_recurrent
    monkeypatch.setitem(sys.modules, "ann.recurrent", fake)
    rng = np.random.default_rng(0)
    out = build_model("lstm", 3, 8, 2, activation="tanh", task="regression", rng=rng, dtype=np.float32,
                      many_to_many=True, truncate=5)
    assert out == "built"
    assert calls == [("lstm", 3, 8, 2, dict(task="regression", rng=rng, dtype=np.float32, activation="tanh",
                                             many_to_many=True, truncate=5))]


def test_builder_errors():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="valid kinds: mlp, rnn, lstm"):
        build_model("gru", 4, [3], 2, activation="tanh", task="classification", rng=rng)
    with pytest.raises(ValueError, match="kind='mlp'.*truncate"):
        build_model("mlp", 4, [3], 2, activation="tanh", task="classification", rng=rng, truncate=3)
    with pytest.raises(ValueError, match="hidden=0"):
        build_mlp(4, [3, 0], 2, activation="tanh", task="classification", rng=rng)
    with pytest.raises(ValueError, match="valid names"):
        build_mlp(4, [3], 2, activation="tanhh", task="classification", rng=rng)
    with pytest.raises(ValueError, match="valid tasks"):
        build_mlp(4, [3], 2, activation="tanh", task="clustering", rng=rng)


def test_sequential_with_hand_built_layers_backpropagates_into_first_layer():
    rng = np.random.default_rng(6)
    model = Sequential([Tanh(), Dense(3, 2, rng=rng)], MeanSquaredError())
    x, y = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    assert max(check_model(model, x, y).values()) < TOL
    assert "Dense" in repr(model)
