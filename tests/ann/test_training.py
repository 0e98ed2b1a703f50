"""fit / evaluate / make_rngs on a tiny stand-in model and on the real MLP."""

import math
from types import SimpleNamespace

import numpy as np
import pytest

from ann.early_stopping import EarlyStopping
from ann.optimizers import SGD, Adam, Momentum
from ann.schedules import ReduceOnPlateau, StepDecay
from ann.training import FitResult, evaluate, fit, make_rngs


class _MSE:
    def forward(self, z, y):
        self._r = z - y.reshape(z.shape)
        return float(np.mean(self._r ** 2))

    def backward(self):
        return self._r * (2.0 / self._r.size)

    def predict(self, z):
        return z


class LinearModel:
    """Stand-in for Sequential: z = x @ W + b with MSE; records every batch it sees."""

    def __init__(self, n_in, n_out=1, dtype=np.float64, nan_after=None):
        self.W = np.zeros((n_in, n_out), dtype=dtype)
        self.b = np.zeros(n_out, dtype=dtype)
        self.gW, self.gb = np.zeros_like(self.W), np.zeros_like(self.b)
        self.loss_fn = _MSE()
        self.batches = []  # first-column values of every training batch
        self.nan_after = nan_after

    def forward(self, x):
        self._x = x
        return x @ self.W + self.b

    def loss(self, x, y):
        self.batches.append(x[:, 0].copy())
        return self.loss_fn.forward(self.forward(x), y)

    def backward(self):
        dz = self.loss_fn.backward()
        self.gW, self.gb = self._x.T @ dz, dz.sum(axis=0)  # overwrite, as layers do
        if self.nan_after is not None and len(self.batches) > self.nan_after:
            self.gW = self.gW * np.nan

    def params(self):
        return {"W": self.W, "b": self.b}

    def grads(self):
        return {"W": self.gW, "b": self.gb}

    def get_weights(self):
        return {k: v.copy() for k, v in self.params().items()}

    def set_weights(self, w):
        for k, p in self.params().items():
            np.copyto(p, w[k])

    def predict(self, x):
        return self.forward(x)


def regression_data(n=50, n_val=20, flip_val=False, dtype=np.float64, seed=0):
    """y = x @ w_true; column 0 of X_train holds the row id (0..n-1) for visit counting."""
    rng = np.random.default_rng(seed)
    w = np.array([[0.0], [1.0], [-2.0]])
    X = rng.normal(size=(n, 3))
    X[:, 0] = np.arange(n) / n
    Xv = rng.normal(size=(n_val, 3))
    Xv[:, 0] = 0.0
    yv = Xv @ w * (-1.0 if flip_val else 1.0)
    return SimpleNamespace(X_train=X.astype(dtype), y_train=(X @ w).astype(dtype), X_val=Xv.astype(dtype),
                           y_val=yv.astype(dtype), task="regression")


def test_make_rngs_streams():
    a, b = make_rngs(3), make_rngs(3)
    assert set(a) == {"split", "init", "shuffle"}
    draws = {k: a[k].random(4) for k in a}
    for k in b:
        np.testing.assert_array_equal(b[k].random(4), draws[k])
    assert not np.allclose(draws["split"], draws["init"])
    assert not np.allclose(make_rngs(4)["split"].random(4), draws["split"])


@pytest.mark.parametrize("batch_size, per_epoch", [(None, 1), (1000, 1), (1, 50), (8, 7), (10, 5)])
def test_update_counts_and_every_sample_once(batch_size, per_epoch):
    data = regression_data(n=50)
    model = LinearModel(3)
    res = fit(model, data, optimizer=SGD(0.01), batch_size=batch_size, max_epochs=3,
              rng=np.random.default_rng(0), divergence_factor=None)
    assert res.n_updates == 3 * per_epoch
    assert res.stop_reason == "max_epochs" and res.stopped_epoch == 3
    # evaluation goes through forward(), not loss(): model.batches holds only training batches
    assert len(model.batches) == 3 * per_epoch
    for e in range(3):
        seen = np.concatenate(model.batches[e * per_epoch:(e + 1) * per_epoch])
        np.testing.assert_array_equal(np.sort(np.round(seen * 50)), np.arange(50))
    if batch_size == 8:
        assert [len(b) for b in model.batches[:7]] == [8] * 6 + [2]  # last partial batch
    if batch_size == 1:  # a fresh permutation every epoch
        assert not np.array_equal(np.concatenate(model.batches[:50]), np.concatenate(model.batches[50:100]))
    assert res.history["samples_seen"] == [50.0, 100.0, 150.0]
    assert "epoch" not in res.history  # history[k][i] belongs to epoch i + 1


def test_history_metrics_and_learning():
    data = regression_data()
    seen = []
    res = fit(LinearModel(3), data, optimizer=SGD(0.05), batch_size=10, max_epochs=20,
              rng=np.random.default_rng(1), on_epoch=lambda e, m: seen.append((e, dict(m))))
    assert isinstance(res, FitResult)
    keys = {"train_loss", "train_rmse", "val_loss", "val_rmse", "lr", "grad_norm", "epoch_seconds",
            "wall_seconds", "samples_seen"}
    assert set(seen[0][1]) == keys and set(res.history) == keys
    assert [e for e, _ in seen] == list(range(1, 21))
    assert res.history["train_loss"][-1] < 1e-3 * res.initial_train_loss
    assert res.history["val_rmse"][-1] == pytest.approx(math.sqrt(res.history["val_loss"][-1]))
    assert res.best_epoch == 20 and not res.diverged and not res.restored  # default stopper: no restore
    assert all(v > 0 for v in res.history["grad_norm"])


def test_same_seed_same_history():
    runs = [fit(LinearModel(3), regression_data(), optimizer=Momentum(0.02), batch_size=4, max_epochs=5,
                rng=np.random.default_rng(7)).history for _ in range(2)]
    for k in ("train_loss", "val_loss", "grad_norm"):
        assert runs[0][k] == runs[1][k]
    other = fit(LinearModel(3), regression_data(), optimizer=Momentum(0.02), batch_size=4, max_epochs=5,
                rng=np.random.default_rng(8)).history
    assert other["train_loss"] != runs[0]["train_loss"]


def test_early_stopping_restores_best_weights():
    data = regression_data(flip_val=True)  # training makes val worse from epoch 2 on
    model = LinearModel(3)
    snaps = {}
    res = fit(model, data, optimizer=SGD(0.05), early_stopping=EarlyStopping(patience=2),
              batch_size=10, max_epochs=50, rng=np.random.default_rng(0),
              on_epoch=lambda e, m: snaps.__setitem__(e, model.get_weights()))
    assert res.stop_reason == "early_stopping" and res.stopped_epoch == 3
    assert res.best_epoch == 1 and res.restored
    assert res.best_val_loss == res.history["val_loss"][0]
    for k, v in model.get_weights().items():
        np.testing.assert_array_equal(v, snaps[1][k])
    assert not np.array_equal(snaps[3]["W"], snaps[1]["W"])


def test_restore_best_false_keeps_last_weights():
    data = regression_data(flip_val=True)
    model = LinearModel(3)
    snaps = {}
    res = fit(model, data, optimizer=SGD(0.05), early_stopping=EarlyStopping(patience=2, restore_best=False),
              batch_size=10, max_epochs=50, rng=np.random.default_rng(0),
              on_epoch=lambda e, m: snaps.__setitem__(e, model.get_weights()))
    assert not res.restored and res.best_epoch == 1
    np.testing.assert_array_equal(model.W, snaps[res.stopped_epoch]["W"])


def test_nan_gradient_stops_at_once_without_applying_it():
    model = LinearModel(3, nan_after=3)
    initial = model.get_weights()
    res = fit(model, regression_data(), optimizer=SGD(0.01), batch_size=5, max_epochs=10,
              rng=np.random.default_rng(0), divergence_factor=None)
    assert res.diverged and res.stop_reason == "diverged" and res.stopped_epoch == 1
    assert res.n_updates == 3 and res.divergence["epoch"] == 1 and res.divergence["update"] == 4
    assert not math.isfinite(res.divergence["loss"] + 0.0) or res.divergence["loss"] >= 0
    # The diverging (first) epoch is not reported, and the weights are the last completed
    # epoch's: here the initial ones.
    assert res.history == {} and res.best_epoch is None
    for k, v in initial.items():
        np.testing.assert_array_equal(model.get_weights()[k], v)


def test_divergence_is_caught_at_the_update_and_rolls_back_to_the_last_epoch():
    data = regression_data()
    model = LinearModel(3)
    seen, snaps = [], {}

    def on_epoch(epoch, metrics):
        seen.append(epoch)
        snaps[epoch] = model.get_weights()

    res = fit(model, data, optimizer=SGD(0.9), batch_size=10, max_epochs=50,
              rng=np.random.default_rng(0), on_epoch=on_epoch)
    assert res.diverged and res.divergence is not None
    limit = 10 * res.initial_train_loss
    # Stopped at the first batch above the limit, before applying it.
    assert res.divergence["loss"] > limit and res.divergence["epoch"] == res.stopped_epoch
    assert seen == list(range(1, res.stopped_epoch)) == list(range(1, len(res.history["train_loss"]) + 1))
    assert max(res.history["train_loss"] + res.history["val_loss"]) <= limit
    assert all(math.isfinite(v) for values in res.history.values() for v in values)
    assert res.n_updates == res.divergence["update"] - 1
    for k, v in snaps[res.stopped_epoch - 1].items():
        np.testing.assert_array_equal(model.get_weights()[k], v)


def test_divergence_by_factor_and_disabled():
    data = regression_data()
    res = fit(LinearModel(3), data, optimizer=SGD(1.5), batch_size=None, max_epochs=30,
              rng=np.random.default_rng(0))
    assert res.diverged and res.stop_reason == "diverged"
    assert res.divergence["loss"] > 10 * res.initial_train_loss
    assert max(res.history.get("train_loss", [0.0])) <= 10 * res.initial_train_loss
    res2 = fit(LinearModel(3), data, optimizer=SGD(1.5), batch_size=None, max_epochs=3,
               rng=np.random.default_rng(0), divergence_factor=None)
    assert not res2.diverged and res2.stop_reason == "max_epochs"


def test_schedules_set_lr():
    data = regression_data()
    res = fit(LinearModel(3), data, optimizer=SGD(0.1), schedule=StepDecay(step_size=2, gamma=0.5),
              batch_size=10, max_epochs=5, rng=np.random.default_rng(0))
    assert res.history["lr"] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])
    plateau = ReduceOnPlateau(factor=0.5, patience=1)
    res = fit(LinearModel(3), regression_data(flip_val=True), optimizer=SGD(0.01), schedule=plateau,
              batch_size=10, max_epochs=4, rng=np.random.default_rng(0))
    # val loss rises every epoch after the first: halved after epochs 2 and 3
    assert res.history["lr"] == pytest.approx([0.01, 0.01, 0.005, 0.0025])


def test_clipping_reports_pre_clip_norm_and_limits_steps():
    data = regression_data()
    model = LinearModel(3)
    res = fit(model, data, optimizer=SGD(0.1), batch_size=None, max_epochs=3, clip_grad_norm=1e-3,
              rng=np.random.default_rng(0))
    assert min(res.history["grad_norm"]) > 0.1  # pre-clip norms, far above the limit
    total = math.sqrt(float((model.W ** 2).sum() + (model.b ** 2).sum()))
    assert total <= 3 * 0.1 * 1e-3 + 1e-12


def test_float32_stays_float32():
    data = regression_data(dtype=np.float32)
    model = LinearModel(3, dtype=np.float32)
    res = fit(model, data, optimizer=Adam(0.05), batch_size=8, max_epochs=3, rng=np.random.default_rng(0))
    assert model.W.dtype == np.float32 and model.b.dtype == np.float32
    assert all(math.isfinite(v) for v in res.history["train_loss"])


@pytest.mark.parametrize("kwargs, arg", [
    ({"batch_size": 0}, "batch_size"), ({"batch_size": 2.5}, "batch_size"), ({"max_epochs": 0}, "max_epochs"),
    ({"clip_grad_norm": 0.0}, "clip_grad_norm"), ({"divergence_factor": -1.0}, "divergence_factor"),
])
def test_fit_validation(kwargs, arg):
    args = {"optimizer": SGD(0.1), "batch_size": 4, "max_epochs": 2, "rng": np.random.default_rng(0)} | kwargs
    with pytest.raises(ValueError, match=arg):
        fit(LinearModel(3), regression_data(), **args)


def test_evaluate_regression_scale_and_chunks():
    data = regression_data(n=30)
    model = LinearModel(3)
    model.b[:] = 1.0
    full = evaluate(model, data.X_train, data.y_train, "regression", y_scale=2.0)
    chunked = evaluate(model, data.X_train, data.y_train, "regression", y_scale=2.0, batch_size=7)
    expected_mse = float(np.mean((1.0 - data.y_train) ** 2))
    assert full["loss"] == pytest.approx(expected_mse) and chunked["loss"] == pytest.approx(expected_mse)
    assert full["rmse"] == pytest.approx(2 * math.sqrt(expected_mse)) == chunked["rmse"]


# ---- the real MLP -----------------------------------------------------------------------------

models = pytest.importorskip("ann.models")
data_mod = pytest.importorskip("ann.data")


@pytest.fixture(scope="module")
def iris():
    return data_mod.load_dataset("iris", rng=make_rngs(0)["split"])


def mlp(d, seed=0, dtype=np.float64):
    return models.build_mlp(d.n_in, [16], d.n_out, activation="tanh", task=d.task,
                            rng=make_rngs(seed)["init"], dtype=dtype)


def test_evaluate_classification(iris):
    model = mlp(iris)
    out = evaluate(model, iris.X_val, iris.y_val, "classification")
    labels = model.predict(iris.X_val).argmax(axis=1)
    assert out["accuracy"] == pytest.approx(np.mean(labels == iris.y_val))
    assert out["loss"] == pytest.approx(model.loss(iris.X_val, iris.y_val))


def test_mlp_learns_iris(iris):
    model = mlp(iris)
    res = fit(model, iris, optimizer=Adam(0.01), early_stopping=EarlyStopping(patience=10), batch_size=16,
              max_epochs=40, rng=make_rngs(0)["shuffle"])
    assert not res.diverged
    assert evaluate(model, iris.X_val, iris.y_val, iris.task)["accuracy"] > 0.9
    assert res.history["val_accuracy"][res.best_epoch - 1] > 0.9


@pytest.mark.parametrize("batch_size, per_epoch", [(None, 1), (1, None), (32, None)])
def test_mlp_update_counts(iris, batch_size, per_epoch):
    n = len(iris.X_train)
    expected = per_epoch or math.ceil(n / batch_size)
    res = fit(mlp(iris), iris, optimizer=SGD(0.05), batch_size=batch_size, max_epochs=2,
              rng=make_rngs(0)["shuffle"])
    assert res.n_updates == 2 * expected
    assert res.history["samples_seen"] == [n, 2 * n]


def test_mlp_same_seed_same_history(iris):
    a = fit(mlp(iris), iris, optimizer=Momentum(0.05), batch_size=8, max_epochs=3, rng=make_rngs(5)["shuffle"])
    b = fit(mlp(iris), iris, optimizer=Momentum(0.05), batch_size=8, max_epochs=3, rng=make_rngs(5)["shuffle"])
    assert a.history["train_loss"] == b.history["train_loss"]
    assert a.history["val_accuracy"] == b.history["val_accuracy"]


def test_mlp_restores_best_epoch(iris):
    model = mlp(iris)
    snaps = {}
    res = fit(model, iris, optimizer=SGD(0.5), early_stopping=EarlyStopping(patience=None), batch_size=4,
              max_epochs=12, rng=make_rngs(0)["shuffle"],
              on_epoch=lambda e, m: snaps.__setitem__(e, model.get_weights()))
    assert res.best_epoch == int(np.argmin(res.history["val_loss"])) + 1
    assert res.restored
    for k, v in model.get_weights().items():
        np.testing.assert_array_equal(v, snaps[res.best_epoch][k])


def test_mlp_huge_lr_diverges_without_exception(iris):
    res = fit(mlp(iris), iris, optimizer=SGD(1e3), batch_size=8, max_epochs=20, rng=make_rngs(0)["shuffle"])
    assert res.diverged and res.stop_reason == "diverged" and res.stopped_epoch < 20


def test_mlp_float32(iris):
    d32 = data_mod.load_dataset("iris", rng=make_rngs(0)["split"], dtype=np.float32)
    model = mlp(d32, dtype=np.float32)
    fit(model, d32, optimizer=Adam(0.01), batch_size=16, max_epochs=2, rng=make_rngs(0)["shuffle"])
    assert all(v.dtype == np.float32 for v in model.params().values())
