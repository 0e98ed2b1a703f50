"""Validate a composed config and build its `ann` objects through an allow-list.

A config is data, also when it comes back from the MLflow store: the only classes it may name
are the optimizers, schedules and early-stopping classes of `ann` listed in ALLOWED_TARGETS.
Every check fails with one `ConfigError` line that names the key, the bad value and what is
allowed, before any MLflow run exists.
"""
from __future__ import annotations

import inspect
import secrets
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ann.data import DATASETS, SCALINGS, SEQUENCE_DATASETS
from ann.activations import ACTIVATIONS, ELEMENTWISE
from ann.early_stopping import EarlyStopping
from ann.optimizers import OPTIMIZERS
from ann.schedules import SCHEDULES


class ConfigError(ValueError):
    """An invalid config value; str() is the one line shown to the user."""


# `${ann.unique:}` in conf/config.yaml: 8 random hex digits that make every run's and every
# sweep's output folder its own (Hydra's `<date>/<time>` alone collides within a second, and
# across machines sharing a disk). Cached per config like Hydra's `now`, so one sweep's jobs
# (which get a copy of the launching config's cache) all see the same value. Registered at
# import: train.py imports this module before Hydra composes, and a launcher's worker imports
# it when it unpickles the sweep callback (experiments.sweep).
OmegaConf.register_new_resolver("ann.unique", lambda: secrets.token_hex(4), use_cache=True,
                                replace=True)


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__name__}"


ALLOWED_TARGETS: dict[str, dict[str, type]] = {
    "optimizer": {_qualname(c): c for c in OPTIMIZERS.values()},
    "schedule": {_qualname(c): c for c in SCHEDULES.values()},
    "early_stopping": {_qualname(EarlyStopping): EarlyStopping},
}
MODEL_KINDS = ("mlp", "rnn", "lstm")
DTYPES = ("float32", "float64")


def _fail(key: str, value: Any, allowed: str) -> None:
    raise ConfigError(f"invalid config: {key}={value!r}: {allowed}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_positive_int(key: str, v: Any, *, allow_none: bool = False) -> None:
    if v is None and allow_none:
        return
    if not _is_int(v) or v < 1:
        _fail(key, v, "must be an integer >= 1" + (" or null" if allow_none else ""))


def _check_fraction(key: str, v: Any) -> None:
    if not _is_num(v) or not 0 < v < 1:
        _fail(key, v, "must be a number in (0, 1)")


def _check_target(group: str, node: Any) -> type:
    allowed = ALLOWED_TARGETS[group]
    target = node.get("_target_") if isinstance(node, (dict, DictConfig)) else None
    if target not in allowed:
        _fail(f"{group}._target_", target, "allowed: " + ", ".join(sorted(allowed)))
    return allowed[target]


def _construct(group: str, node: DictConfig, **extra: Any) -> Any:
    """Instantiate an allow-listed class; a ValueError becomes a ConfigError on `group.arg`."""
    cls = _check_target(group, node)
    kwargs = {k: v for k, v in OmegaConf.to_container(node, resolve=True).items()
              if k != "_target_"}
    accepted = inspect.signature(cls).parameters
    for key in kwargs:
        if key not in accepted:
            _fail(f"{group}.{key}", kwargs[key],
                  f"unknown argument of {cls.__name__}; allowed: "
                  + ", ".join(p for p in accepted if p not in extra))
    try:
        return cls(**kwargs, **extra)
    except (TypeError, ValueError) as err:
        arg = next((k for k in kwargs if k in str(err)), None)
        key = f"{group}.{arg}" if arg else group
        value = kwargs.get(arg) if arg else None
        raise ConfigError(f"invalid config: {key}={value!r}: {err}") from None


def validate(cfg: DictConfig) -> None:
    """Check every user-facing value; raise ConfigError with one line on the first bad one."""
    if not _is_int(cfg.seed) or cfg.seed < 0:
        _fail("seed", cfg.seed, "must be an integer >= 0")
    if not isinstance(cfg.get("resume", False), bool):
        _fail("resume", cfg.resume, "must be true or false")
    ds = cfg.dataset
    if ds.name not in DATASETS:
        _fail("dataset", ds.name, "allowed: " + ", ".join(sorted(DATASETS)))
    _check_fraction("dataset.val_fraction", ds.val_fraction)
    _check_fraction("dataset.test_fraction", ds.test_fraction)
    if ds.val_fraction + ds.test_fraction >= 1:
        _fail("dataset.test_fraction", ds.test_fraction,
              f"val_fraction + test_fraction must be < 1 (val_fraction={ds.val_fraction})")
    for key in ("seq_len", "n_samples", "horizon"):
        if key in ds:
            _check_positive_int(f"dataset.{key}", ds[key])
    if "noise" in ds and (not _is_num(ds.noise) or ds.noise < 0):
        _fail("dataset.noise", ds.noise, "must be a number >= 0")
    # absent (a config logged before the key existed): load_dataset's default, legacy
    if "scaling" in ds and ds.scaling not in SCALINGS:
        _fail("dataset.scaling", ds.scaling, "allowed: " + ", ".join(SCALINGS))
    if ds.name == "adding" and ds.seq_len < 2:
        _fail("dataset.seq_len", ds.seq_len, "the adding problem needs seq_len >= 2")

    m = cfg.model
    if m.kind not in MODEL_KINDS:
        _fail("model.kind", m.kind, "allowed: " + ", ".join(MODEL_KINDS))
    sequence = ds.name in SEQUENCE_DATASETS
    if m.kind == "mlp":
        if sequence:
            _fail("model", m.kind, f"dataset {ds.name} is a sequence task: use model=rnn or "
                  "model=lstm")
        hidden = m.hidden
        if not OmegaConf.is_list(hidden) or not all(_is_int(h) and h >= 1 for h in hidden):
            _fail("model.hidden", _plain(hidden), "must be a list of integers >= 1, e.g. [128, 64]")
        if m.activation not in ACTIVATIONS or m.activation == "softmax":
            _fail("model.activation", m.activation, "allowed: "
                  + ", ".join(sorted(a for a in ACTIVATIONS if a != "softmax")))
    else:
        if not sequence:
            _fail("model", m.kind, f"dataset {ds.name} is not a sequence task: use model=mlp, "
                  "or a sequence dataset (" + ", ".join(sorted(SEQUENCE_DATASETS)) + ")")
        hidden = _plain(m.hidden)
        sizes = hidden if isinstance(hidden, list) else [hidden]
        if not sizes or not all(_is_int(h) and h >= 1 for h in sizes):
            _fail("model.hidden", hidden, "must be an integer >= 1 (or a list of them)")
        allowed_act = sorted(ELEMENTWISE) if m.kind == "rnn" else ["tanh"]
        if m.get("activation", "tanh") not in allowed_act:
            _fail("model.activation", m.activation, "allowed: " + ", ".join(allowed_act))
        _check_positive_int("model.truncate", m.get("truncate"), allow_none=True)
        fb = m.get("forget_bias", 0.0)
        if not _is_num(fb):
            _fail("model.forget_bias", fb, "must be a number")

    t = cfg.trainer
    _check_positive_int("trainer.max_epochs", t.max_epochs)
    _check_positive_int("trainer.batch_size", t.batch_size, allow_none=True)
    if t.clip_grad_norm is not None and (not _is_num(t.clip_grad_norm) or t.clip_grad_norm <= 0):
        _fail("trainer.clip_grad_norm", t.clip_grad_norm, "must be a number > 0 or null")
    if t.divergence_factor is not None and (not _is_num(t.divergence_factor)
                                            or t.divergence_factor <= 1):
        _fail("trainer.divergence_factor", t.divergence_factor, "must be a number > 1 or null")
    if t.dtype not in DTYPES:
        _fail("trainer.dtype", t.dtype, "allowed: " + ", ".join(DTYPES))
    if t.gd not in ("batch", "sgd", "minibatch"):
        _fail("trainer.gd", t.gd, "allowed: batch, sgd, minibatch")
    _check_positive_int("trainer.blas_threads", t.get("blas_threads"), allow_none=True)
    if t.progress not in ("auto", True, False):
        _fail("trainer.progress", t.progress, "allowed: auto, true, false")
    rows = t.get("probe_rows", 0)
    if not _is_int(rows) or rows < 0:
        _fail("trainer.probe_rows", rows, "must be an integer >= 0 (0 = no layer diagnostics)")

    o = cfg.optimizer
    _check_target("optimizer", o)
    if not _is_num(o.get("lr")) or o.lr <= 0:
        _fail("optimizer.lr", o.get("lr"), "must be a number > 0")
    if "weight_decay" in o and (not _is_num(o.weight_decay) or o.weight_decay < 0):
        _fail("optimizer.weight_decay", o.weight_decay, "must be a number >= 0")
    es = cfg.early_stopping
    _check_target("early_stopping", es)
    if es.patience is not None and (not _is_int(es.patience) or es.patience < 0):
        _fail("early_stopping.patience", es.patience, "must be an integer >= 0 or null (off)")
    if not _is_num(es.min_delta) or es.min_delta < 0:
        _fail("early_stopping.min_delta", es.min_delta, "must be a number >= 0")
    _check_target("schedule", cfg.schedule)
    build_training_objects(cfg)  # constructor checks of the remaining arguments
    if not isinstance(cfg.mlflow.experiment_name, str) or not cfg.mlflow.experiment_name:
        _fail("mlflow.experiment_name", cfg.mlflow.experiment_name, "must be a non-empty string")
    if len(cfg.mlflow.experiment_name) > 256:  # MLflow's experiments.name is String(256)
        _fail("mlflow.experiment_name", cfg.mlflow.experiment_name[:40] + "...",
              f"at most 256 characters (MLflow's limit), got {len(cfg.mlflow.experiment_name)}")


def one_line(message: str) -> str:
    """Hydra's multi-line composition errors as one line (hints and internals dropped)."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    if "Config search path:" in lines:
        lines = lines[:lines.index("Config search path:")]
    skip = ("To append", "full_key:", "object_type=", "Set the environment", "reference_type=")
    keep = [line for line in lines if not line.startswith(skip)]
    if any(line.startswith("Available options") for line in keep):
        at = next(i for i, line in enumerate(keep) if line.startswith("Available options"))
        keep = keep[:at] + [keep[at].rstrip(":").lower() + ": " + ", ".join(keep[at + 1:])]
    return " ".join(line if line.endswith((".", ":")) else line + ";" for line in keep
                    ).rstrip(";")


def describe(ex: BaseException) -> str:
    """One line for a Hydra composition error, with its cause (e.g. 'not in struct')."""
    cause = f"\n{ex.__cause__}" if ex.__cause__ is not None else ""
    return one_line(str(ex) + cause)


def _plain(v: Any) -> Any:
    return OmegaConf.to_container(v) if OmegaConf.is_config(v) else v


@dataclass
class TrainingObjects:
    optimizer: Any
    schedule: Any
    early_stopping: Any


def build_training_objects(cfg: DictConfig) -> TrainingObjects:
    """Instantiate optimizer, schedule and early stopping from their allow-listed targets."""
    return TrainingObjects(
        optimizer=_construct("optimizer", cfg.optimizer),
        schedule=_construct("schedule", cfg.schedule),
        early_stopping=_construct("early_stopping", cfg.early_stopping),
    )


# Settings of the harness, not of the job (where it logs, how it shows progress, how many
# BLAS threads compute it, how many rows the layer diagnostics probe): in the logged
# config.yaml, never MLflow params.
HARNESS_KEYS = ("mlflow", "trainer.progress", "trainer.blas_threads", "trainer.probe_rows",
                "resume")
MAX_PARAM_LENGTH = 6000


def job_params(cfg: DictConfig) -> dict[str, str]:
    """What defines the job, as MLflow params: every leaf of the resolved config as a dotted
    key (lists whole, `[128, 64]`), minus HARNESS_KEYS; a group's `_target_` class path
    becomes the group's registry name (`optimizer: adam`, `schedule: cosine`; early stopping
    has one class, its settings say all)."""
    node = OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else dict(cfg)
    out: dict[str, str] = {}

    def walk(value: Any, dotted: str) -> None:
        if dotted in HARNESS_KEYS:
            return
        if isinstance(value, dict) and value:
            for key, sub in value.items():
                if key == "_target_":
                    name = _registry_name(dotted, sub)
                    if name is not None:
                        out[dotted] = name
                    continue
                walk(sub, f"{dotted}.{key}" if dotted else str(key))
        else:
            out[dotted] = str(value)[:MAX_PARAM_LENGTH]

    walk(node, "")
    return out


def _registry_name(group: str, target: Any) -> str | None:
    registry = {"optimizer": OPTIMIZERS, "schedule": SCHEDULES}.get(group, {})
    return next((name for name, cls in registry.items() if _qualname(cls) == target), None)


def dataset_options(cfg: DictConfig) -> dict[str, Any]:
    """The dataset node as keyword arguments of ann.data.load_dataset (minus the name).

    A node without `scaling` (a config logged before the key existed) passes none, so
    load_dataset's default, `legacy`, rebuilds the data of then bit for bit."""
    opts = OmegaConf.to_container(cfg.dataset, resolve=True)
    opts.pop("name")
    return opts


def model_options(cfg: DictConfig) -> dict[str, Any]:
    """The model node as keyword arguments of ann.models.build_model (minus kind, hidden)."""
    opts = OmegaConf.to_container(cfg.model, resolve=True)
    for key in ("kind", "hidden"):
        opts.pop(key)
    return opts


# Keys that change where or how a job is logged, never what it computes: left out of the config
# digest, so a sweep re-run with `resume=true` (or a progress bar, or another store) still
# matches the runs it already finished.
DIGEST_EXCLUDED = ("mlflow", "trainer.progress", "resume")


def config_digest(cfg: DictConfig) -> str:
    """sha256 of the resolved job config (keys sorted) minus DIGEST_EXCLUDED: two jobs with the
    same digest compute the same thing from the same code and data. Logged as the tag
    `ann.config_digest`; `resume=true` matches finished runs by it."""
    import hashlib
    import json

    node = OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else dict(cfg)
    node.pop("hydra", None)
    for dotted in DIGEST_EXCLUDED:
        *parents, leaf = dotted.split(".")
        holder = node
        for key in parents:
            holder = holder.get(key) if isinstance(holder, dict) else None
        if isinstance(holder, dict):
            holder.pop(leaf, None)
    text = json.dumps(node, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def expand_seeds(argv: list[str]) -> list[str]:
    """`seeds=N` on a command line: the job, or every arm of a preset, over N seeds.

    Becomes `seed=range(S,S+N)` (S = a plain `seed=S` given with it, else 0) plus `--multirun`
    when the command is not a sweep already, before Hydra parses the line; so the record shows
    the seeds as a swept `seed` like a hand-written `seed=0,1,2,3,4`. Raises ConfigError for a
    bad N or a `seed=` that is itself a sweep."""
    found = [a for a in argv if a.split("=", 1)[0] == "seeds" and "=" in a]
    if not found:
        return list(argv)
    if len(found) > 1:
        _fail("seeds", ",".join(a.split("=", 1)[1] for a in found), "give seeds=N once")
    value = found[0].split("=", 1)[1]
    if not value.isdigit() or int(value) < 1:
        _fail("seeds", value, "must be an integer >= 1 (seeds=N runs seeds S..S+N-1, S = seed "
              "or 0)")
    start = 0
    seed_args = [a for a in argv if a.split("=", 1)[0] in ("seed", "+seed", "++seed")]
    for arg in seed_args:
        given = arg.split("=", 1)[1]
        if not given.isdigit():
            raise ConfigError(f"invalid config: {arg}: with seeds={value} give one starting "
                              "seed (seed=10 seeds=5 runs seeds 10..14), not a list or range")
        start = int(given)
    out = [a for a in argv if a is not found[0] and a not in seed_args]
    out.append(f"seed=range({start},{start + int(value)})")
    if not any(a in ("-m", "--multirun") for a in out):
        out.insert(0, "--multirun")
    return out
