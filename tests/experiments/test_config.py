"""Config tests: every group option composes and builds; every bad value gets one clear line."""
from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from experiments.config import ALLOWED_TARGETS, ConfigError, build_training_objects, validate

CONF = Path(__file__).resolve().parents[2] / "conf"
GROUPS = ["dataset", "model", "gd", "optimizer", "schedule", "early_stopping", "trainer",
          "mlflow"]
SEQUENCE = {"digits_seq", "adding", "sine"}


def _compose(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=overrides)


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in _options(g)])
def test_every_group_option_composes_validates_and_builds(group, option):
    overrides = [f"{group}={option}"]
    if group == "dataset" and option in SEQUENCE:
        overrides.append("model=lstm")
    if group == "model" and option != "mlp":
        overrides.append("dataset=adding")
    cfg = _compose(overrides)
    validate(cfg)
    objects = build_training_objects(cfg)
    assert objects.optimizer.lr == cfg.optimizer.lr


def test_gd_group_sets_the_batch_size():
    assert _compose(["gd=batch"]).trainer.batch_size is None
    assert _compose(["gd=sgd"]).trainer.batch_size == 1
    assert _compose(["gd=minibatch"]).trainer.batch_size == 32
    assert _compose(["gd=sgd"]).trainer.gd == "sgd"


BAD = [
    (["optimizer.lr=0"], "optimizer.lr=0"),
    (["optimizer.lr=-0.1"], "optimizer.lr=-0.1"),
    (["trainer.batch_size=0"], "trainer.batch_size=0"),
    (["early_stopping.patience=-1"], "early_stopping.patience=-1"),
    (["model.hidden=[128,0]"], "model.hidden=[128, 0]"),
    (["dataset.val_fraction=1.5"], "dataset.val_fraction=1.5"),
    (["dataset.test_fraction=0"], "dataset.test_fraction=0"),
    (["model.activation=relu6"], "model.activation='relu6'"),
    (["trainer.max_epochs=0"], "trainer.max_epochs=0"),
    (["trainer.dtype=float16"], "trainer.dtype='float16'"),
    (["trainer.clip_grad_norm=0"], "trainer.clip_grad_norm=0"),
    (["seed=-3"], "seed=-3"),
    (["dataset=adding", "model=lstm", "dataset.seq_len=0"], "dataset.seq_len=0"),
    (["dataset=adding", "model=rnn", "model.truncate=0"], "model.truncate=0"),
    (["dataset=adding", "model=lstm", "trainer.clip_grad_norm=-1"], "trainer.clip_grad_norm=-1"),
    (["dataset=adding"], "model='mlp'"),
    (["model=lstm"], "model='lstm'"),
    (["optimizer.momentum=1.5", "optimizer=momentum"], "optimizer.momentum=1.5"),
    (["schedule=step", "schedule.gamma=-1"], "schedule.gamma=-1"),
    (["optimizer._target_=os.system"], "optimizer._target_='os.system'"),
]


@pytest.mark.parametrize("overrides,needle", BAD, ids=[" ".join(b[0]) for b in BAD])
def test_bad_values_raise_one_line_naming_key_and_value(overrides, needle):
    cfg = _compose(overrides)
    with pytest.raises(ConfigError) as info:
        validate(cfg)
    message = str(info.value)
    assert "\n" not in message
    assert needle in message, message


def test_allow_list_names_only_ann_classes():
    for group in ALLOWED_TARGETS.values():
        assert group and all(name.startswith("ann.") for name in group)


def test_unknown_argument_of_a_component_is_named():
    cfg = _compose(["optimizer=sgd"])
    OmegaConf.set_struct(cfg, False)
    cfg.optimizer.momentun = 0.9
    with pytest.raises(ConfigError, match="optimizer.momentun"):
        validate(cfg)
