"""Early stopping on the validation loss, remembering the best epoch's weights."""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

Array = np.ndarray


class EarlyStopping:
    """Track the best validation loss; say when to stop after `patience` epochs without progress.

    improvement:  val_loss < best_val_loss - min_delta   (a non-finite val_loss never improves)
    On improvement: best_epoch, best_val_loss <- epoch, val_loss; best_weights <- weights_fn()
    (a dict of copies) and wait <- 0. Otherwise wait <- wait + 1, and `update` returns True
    (stop now) once wait >= patience. patience=None never stops but still tracks the best epoch;
    patience=0 stops at the first epoch that does not improve. `restore_best` is read by `fit`:
    at the end of training the model gets `best_weights` back.
    """

    def __init__(self, patience: int | None = None, min_delta: float = 0.0,
                 restore_best: bool = True) -> None:
        if patience is not None and (isinstance(patience, bool) or not isinstance(patience, (int, np.integer))
                                     or patience < 0):
            raise ValueError(f"patience={patience!r} is invalid: must be an integer >= 0 or None")
        if (isinstance(min_delta, bool) or not isinstance(min_delta, (int, float, np.integer, np.floating))
                or not math.isfinite(min_delta) or min_delta < 0):
            raise ValueError(f"min_delta={min_delta!r} is invalid: must be a finite number >= 0")
        if not isinstance(restore_best, (bool, np.bool_)):
            raise ValueError(f"restore_best={restore_best!r} is invalid: must be true or false")
        self.patience = None if patience is None else int(patience)
        self.min_delta = float(min_delta)
        self.restore_best = bool(restore_best)
        self.reset()

    def reset(self) -> None:
        """Forget the best epoch and the waiting count."""
        self.best_epoch: int | None = None
        self.best_val_loss = math.inf
        self.best_weights: dict[str, Array] | None = None
        self.wait = 0
        self.stopped = False

    def update(self, epoch: int, val_loss: float,
               weights_fn: Callable[[], dict[str, Array]] | None = None) -> bool:
        """Record `val_loss` of `epoch`; return True when training should stop now.

        `weights_fn()` is called only on improvement and must return copies (e.g.
        `model.get_weights`); pass None to track the best epoch without storing weights.
        """
        val_loss = float(val_loss)
        if math.isfinite(val_loss) and val_loss < self.best_val_loss - self.min_delta:
            self.best_epoch = epoch
            self.best_val_loss = val_loss
            if weights_fn is not None:
                self.best_weights = weights_fn()
            self.wait = 0
            return False
        self.wait += 1
        self.stopped = self.patience is not None and self.wait >= self.patience
        return self.stopped

    def __repr__(self) -> str:
        return (f"EarlyStopping(patience={self.patience}, min_delta={self.min_delta}, "
                f"restore_best={self.restore_best})")
