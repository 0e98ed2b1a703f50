"""EarlyStopping: stop decisions and best-epoch tracking on hand-written loss sequences."""

import math

import numpy as np
import pytest

from ann.early_stopping import EarlyStopping


def drive(es, losses):
    """Feed losses for epochs 1..n until it says stop; return the stopping epoch (or None)."""
    for epoch, v in enumerate(losses, start=1):
        if es.update(epoch, v, lambda e=epoch: {"w": np.array([float(e)])}):
            return epoch
    return None


def test_patience_zero_stops_at_first_non_improvement():
    es = EarlyStopping(patience=0)
    assert drive(es, [3.0, 2.0, 2.5, 1.0]) == 3
    assert es.best_epoch == 2 and es.best_val_loss == 2.0
    assert es.best_weights["w"][0] == 2.0


def test_patience_two():
    es = EarlyStopping(patience=2)
    # 3, 2 (best), 2.5 (w1), 1.5 (best, w0), 1.6 (w1), 1.5 (equal: w2 -> stop)
    assert drive(es, [3.0, 2.0, 2.5, 1.5, 1.6, 1.5, 0.1]) == 6
    assert es.best_epoch == 4 and es.best_val_loss == 1.5 and es.wait == 2
    assert es.best_weights["w"][0] == 4.0


def test_min_delta():
    es = EarlyStopping(patience=1, min_delta=0.1)
    # 1.0 best; 0.95 is not better by > 0.1 -> stop at epoch 2 with patience 1
    assert drive(es, [1.0, 0.95, 0.5]) == 2
    assert es.best_epoch == 1
    es2 = EarlyStopping(patience=1, min_delta=0.1)
    assert drive(es2, [1.0, 0.85, 0.7, 0.65]) == 4
    assert es2.best_epoch == 3


def test_nan_never_improves():
    es = EarlyStopping(patience=2)
    assert drive(es, [math.nan, math.inf, 1.0]) == 2
    assert es.best_epoch is None and es.best_weights is None
    es = EarlyStopping(patience=2)
    assert drive(es, [1.0, math.nan, 0.5, math.nan, math.nan]) == 5
    assert es.best_epoch == 3 and es.best_val_loss == 0.5


def test_patience_none_never_stops_but_tracks():
    es = EarlyStopping(patience=None)
    assert drive(es, [1.0, 0.5] + [0.9] * 50) is None
    assert es.best_epoch == 2 and es.wait == 50


def test_weights_fn_called_only_on_improvement_and_reset():
    calls = []
    es = EarlyStopping(patience=None)
    for epoch, v in enumerate([1.0, 2.0, 0.5, 0.7], start=1):
        es.update(epoch, v, lambda e=epoch: calls.append(e) or {"e": e})
    assert calls == [1, 3] and es.best_weights == {"e": 3}
    es.update(5, 0.1)  # without weights_fn: the best epoch moves, weights are not taken
    assert es.best_epoch == 5
    es.reset()
    assert es.best_epoch is None and es.best_val_loss == math.inf and es.wait == 0


@pytest.mark.parametrize("kwargs, arg", [
    ({"patience": -1}, "patience"), ({"patience": 1.5}, "patience"), ({"patience": True}, "patience"),
    ({"min_delta": -0.01}, "min_delta"), ({"min_delta": math.nan}, "min_delta"),
    ({"restore_best": "yes"}, "restore_best"),
])
def test_validation(kwargs, arg):
    with pytest.raises(ValueError, match=arg):
        EarlyStopping(**kwargs)
