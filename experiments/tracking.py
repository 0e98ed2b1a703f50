"""MLflow plumbing: where the store is, experiments created once, config leaves as params."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_STORE = PROJECT_ROOT / "mlruns"
MAX_PARAM_LENGTH = 6000
# The only metrics that may differ between a run and its reproduction (or across workers).
TIMING_METRICS = frozenset({"epoch_seconds", "wall_seconds", "train_seconds"})


class StoreError(RuntimeError):
    """The tracking store cannot be reached or used; str() is the one line for the user."""


# MLflow retries a failed HTTP call 7 times with 2**n s backoff and a 120 s timeout (minutes
# per call when a server is gone); bounded here, at most ~90 s per call. The user's values win.
HTTP_LIMITS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
               "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}
for _key, _value in HTTP_LIMITS.items():
    os.environ.setdefault(_key, _value)


def default_tracking_uri() -> str:
    return f"sqlite:///{DEFAULT_STORE / 'mlflow.db'}"


def resolve_tracking_uri(override: str | None = None) -> str:
    """An explicit override wins over $MLFLOW_TRACKING_URI, which wins over the local store."""
    uri = override or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    return uri


def artifact_location_for(uri: str) -> str | None:
    """Absolute artifact root for the default local store (relative paths follow the cwd)."""
    if uri == default_tracking_uri():
        root = DEFAULT_STORE / "artifacts"
        root.mkdir(parents=True, exist_ok=True)
        return root.as_uri()
    if uri.startswith("sqlite:///"):
        root = Path(uri[len("sqlite:///"):]).parent / "artifacts"
        root.mkdir(parents=True, exist_ok=True)
        return root.as_uri()
    return None  # a tracking server decides for itself


_CLIENTS: dict[str, Any] = {}


def client_for(uri: str):
    """One MlflowClient per store and process (building one opens and checks the store)."""
    if uri not in _CLIENTS:
        from mlflow.tracking import MlflowClient

        _CLIENTS[uri] = MlflowClient(tracking_uri=uri)
    return _CLIENTS[uri]


def first_line(err: BaseException) -> str:
    """The first line of an error's message (its type's name when it has none)."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def open_store(uri: str, timeout: float = 10.0):
    """A client for a store that must already exist: a missing SQLite file or an unreachable
    server raises StoreError (one line) instead of creating or waiting on anything."""
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///"):])
        if not db.is_file():
            raise StoreError(f"no MLflow store at {uri} (file {db} does not exist)")
    check_reachable(uri, timeout=timeout)
    return client_for(uri)


def check_reachable(uri: str, timeout: float = 20.0) -> None:
    """Fail fast with one line when an http(s) tracking server does not answer."""
    if not uri.startswith(("http://", "https://")):
        return
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as resp:
            if resp.status != 200:
                raise StoreError(f"tracking server {uri} answered HTTP {resp.status} on /health")
    except (urllib.error.URLError, OSError, TimeoutError) as err:
        reason = getattr(err, "reason", err)
        raise StoreError(f"cannot reach the MLflow tracking server at {uri}: {reason}") from None


def ensure_experiment(uri: str, name: str, description: str | None = None) -> str:
    """Create (or find) an experiment once; return its id. Call in one process only."""
    check_reachable(uri)
    try:
        client = client_for(uri)
        exp = client.get_experiment_by_name(name)
        if exp is None:
            tags = {"mlflow.note.content": description} if description else None
            try:
                exp_id = client.create_experiment(
                    name, artifact_location=artifact_location_for(uri), tags=tags)
            except Exception:  # created meanwhile by another process
                exp = client.get_experiment_by_name(name)
                if exp is None:
                    raise
                exp_id = exp.experiment_id
        else:
            exp_id = exp.experiment_id
            if exp.lifecycle_stage == "deleted":
                client.restore_experiment(exp_id)
            if description and exp.tags.get("mlflow.note.content") != description:
                client.set_experiment_tag(exp_id, "mlflow.note.content", description)
        return exp_id
    except StoreError:
        raise
    except Exception as err:  # noqa: BLE001 - any store failure becomes one line
        raise StoreError(f"cannot use the MLflow store {uri}: {first_line(err)}") from None


def flatten(cfg: DictConfig | dict, prefix: str = "") -> dict[str, str]:
    """Every leaf of a (resolved) config as a dotted key; lists stay whole, `[128, 64]`."""
    node = OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else cfg
    out: dict[str, str] = {}
    for key, value in node.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, dotted + "."))
        else:
            out[dotted] = str(value)[:MAX_PARAM_LENGTH]
    return out


def git_info() -> tuple[str, bool]:
    """(commit, dirty) of the project checkout; ("unknown", True) outside git."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no", "--", "ann",
                         "experiments", "conf"))
        return commit, dirty
    except (OSError, subprocess.SubprocessError):
        return "unknown", True


def metrics_batch(values: dict[str, float], step: int, timestamp_ms: int) -> list[Any]:
    from mlflow.entities import Metric

    return [Metric(key=k, value=float(v), timestamp=timestamp_ms, step=step)
            for k, v in values.items()]
