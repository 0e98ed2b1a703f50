"""The trained network as an MLflow model: runs:/<run_id>/model loads elsewhere and predicts
on raw features what the run's own network predicts; it is listed as the run's model; no pickle;
`mlflow models serve` answers /invocations with the same predictions."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from tests.ann.test_data_scaling import raw_splits
from experiments.serving import stop
from tests.experiments.conftest import ROOT, free_port, wait_until

# name -> overrides: an MLP classifier and a regressor with a standardised target, and
# recurrent nets on sequences (3-D inputs; sine is many-to-many), a few epochs each.
JOBS = {
    "iris": ["dataset=iris", "trainer.max_epochs=5", "model.hidden=[8]", "early_stopping=off"],
    "diabetes": ["dataset=diabetes", "trainer.max_epochs=3", "model.hidden=[8]",
                 "early_stopping=off"],
    "sine": ["dataset=sine", "model=lstm", "model.hidden=6", "dataset.n_samples=80",
             "dataset.seq_len=7", "trainer.max_epochs=2", "early_stopping=off"],
    "digits_seq": ["dataset=digits_seq", "model=rnn", "model.hidden=6", "trainer.max_epochs=1",
                   "early_stopping=off", "trainer.dtype=float32"],
}

LOAD_AND_PREDICT = """
import json, sys
import numpy as np
import mlflow.pyfunc

import_dirs = set()
for job in json.loads(sys.argv[1]):
    model = mlflow.pyfunc.load_model(f"runs:/{job['run_id']}/model")
    np.save(job["out"], model.predict(np.load(job["x"])))
    import ann
    import_dirs.add(ann.__file__)
print(json.dumps(sorted(import_dirs)))
"""


@pytest.fixture(scope="module")
def logged(tmp_path_factory, prepared_db):
    """{name: (run_id, cfg)} of the JOBS, logged through the harness into one store."""
    from hydra import compose, initialize_config_dir

    from experiments.runner import run_job

    folder = tmp_path_factory.mktemp("model-store")
    shutil.copy(prepared_db, folder / "mlflow.db")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    runs = {}
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        for name, overrides in JOBS.items():
            cfg = compose("config", overrides=overrides)
            outcome = run_job(cfg, overrides=overrides, tracking_uri=uri,
                              output_dir=folder / "outputs" / name)
            assert outcome.status == "FINISHED", outcome.tags.get("error")
            runs[name] = (outcome.run_id, cfg)
    return uri, runs


def raw_test_inputs_and_expected(client, run_id: str, cfg, tmp_path: Path):
    """The raw test split (before the harness's scaling) and what the run's own network, its
    logged weights.npz in a network built as the runner builds it, predicts for it."""
    from ann.training import make_rngs
    from experiments.config import dataset_options
    from experiments.runner import prepare

    data, model, _, _ = prepare(cfg)
    weights = client.download_artifacts(run_id, "weights.npz", str(tmp_path))
    with np.load(weights) as w:
        model.set_weights({k: w[k] for k in w.files})
    raw = raw_splits(cfg.dataset.name, make_rngs(int(cfg.seed))["split"],
                     **dataset_options(cfg))[2]
    if data.task == "classification":
        expected = model.predict_labels(data.X_test)
    else:
        expected = model.predict(data.X_test) * data.y_scale + data.y_mean
    return raw, expected


def assert_same_predictions(got: np.ndarray, expected: np.ndarray, task: str) -> None:
    assert got.shape == expected.shape
    if task == "classification":
        assert np.array_equal(got, expected)
    else:
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_loaded_elsewhere_the_model_predicts_what_the_run_network_predicts(logged, tmp_path):
    from mlflow.tracking import MlflowClient

    uri, runs = logged
    client = MlflowClient(tracking_uri=uri)
    jobs, expected = [], {}
    for name, (run_id, cfg) in runs.items():
        raw, expected[name] = raw_test_inputs_and_expected(client, run_id, cfg, tmp_path / name)
        np.save(tmp_path / f"{name}-x.npy", raw)
        jobs.append({"run_id": run_id, "x": str(tmp_path / f"{name}-x.npy"),
                     "out": str(tmp_path / f"{name}-y.npy")})
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    proc = subprocess.run([sys.executable, "-c", LOAD_AND_PREDICT, json.dumps(jobs)], cwd=cwd,
                          env={**os.environ, "MLFLOW_TRACKING_URI": uri}, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ann_files = json.loads(proc.stdout.strip().splitlines()[-1])
    assert ann_files and not any(f.startswith(str(ROOT)) for f in ann_files)  # the model's copy
    for name, (run_id, cfg) in runs.items():
        task = "classification" if name in ("iris", "digits_seq") else "regression"
        assert_same_predictions(np.load(tmp_path / f"{name}-y.npy"), expected[name], task)


def test_the_model_is_the_runs_logged_model_with_no_pickle(logged, tmp_path):
    import mlflow.artifacts
    from mlflow.entities import LoggedModelStatus
    from mlflow.models import Model
    from mlflow.tracking import MlflowClient

    uri, runs = logged
    client = MlflowClient(tracking_uri=uri)
    for name, (run_id, _) in runs.items():
        run = client.get_run(run_id)
        outputs = [o.model_id for o in run.outputs.model_outputs]
        models = [m for m in client.search_logged_models([run.info.experiment_id])
                  if m.source_run_id == run_id]
        assert [m.model_id for m in models] == outputs and len(outputs) == 1
        assert models[0].name == "model" and models[0].status == LoggedModelStatus.READY
        # what runs:/<run_id>/model resolves to (loaded so in the test above)
        folder = Path(mlflow.artifacts.download_artifacts(models[0].artifact_location,
                                                          dst_path=str(tmp_path / name)))
        files = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
        assert {"MLmodel", "artifacts/weights.npz", "artifacts/spec.json",
                "input_example.json", "requirements.txt", "code/ann/models.py"} <= files
        assert not [f for f in files if f.endswith((".pkl", ".pickle", ".joblib"))]
        meta = Model.load(str(folder))
        assert meta.run_id == run_id and meta.model_id == outputs[0]
        assert meta.signature is not None and meta.saved_input_example_info
        assert "model_code_path" in meta.flavors["python_function"]
        requirements = (folder / "requirements.txt").read_text().split()
        assert f"numpy=={np.__version__}" in requirements


def _post_json(url: str, body: dict):
    request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def _ping(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.parametrize("name", ["iris", "sine"])
def test_served_model_answers_invocations_with_the_same_predictions(logged, tmp_path, name):
    from mlflow.tracking import MlflowClient

    uri, runs = logged
    run_id, cfg = runs[name]
    raw, expected = raw_test_inputs_and_expected(MlflowClient(tracking_uri=uri), run_id, cfg,
                                                 tmp_path)
    port = free_port()
    bin_dir = str(Path(sys.executable).parent)  # as in an activated venv: mlflow runs uvicorn
    server = subprocess.Popen(
        [str(Path(bin_dir, "mlflow")), "models", "serve", "-m", f"runs:/{run_id}/model",
         "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)],
        cwd=tmp_path, env={**os.environ, "MLFLOW_TRACKING_URI": uri,
                           "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "")])},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        wait_until(lambda: _ping(f"http://127.0.0.1:{port}/ping"), "the model server's /ping",
                   proc=server, timeout=120, every=0.5)
        answer = _post_json(f"http://127.0.0.1:{port}/invocations", {"inputs": raw.tolist()})
        got = np.asarray(answer["predictions"])
        task = "classification" if name == "iris" else "regression"
        assert_same_predictions(got, expected, task)
    finally:
        stop(server, timeout=20)


def test_the_skipped_environment_check_is_still_the_one_save_model_calls(tmp_path, monkeypatch):
    """`_quiet_save` replaces mlflow.utils.environment.warn_dependency_requirement_mismatches
    (private to MLflow) for the duration of a save. Fails loudly when an MLflow upgrade stops
    calling it through that module attribute (the patch would then silently cost 0.6 s a run)."""
    import mlflow.pyfunc
    from mlflow.utils import environment

    from experiments.mlflow_model import _quiet_save

    calls = []
    original = environment.warn_dependency_requirement_mismatches
    monkeypatch.setattr(environment, "warn_dependency_requirement_mismatches",
                        lambda requirements: calls.append(requirements))
    code = tmp_path / "model_code.py"
    code.write_text("import mlflow.pyfunc\nfrom mlflow.models import set_model\n"
                    "class M(mlflow.pyfunc.PythonModel):\n"
                    "    def predict(self, context, model_input):\n        return model_input\n"
                    "set_model(M())\n")
    mlflow.pyfunc.save_model(path=str(tmp_path / "checked"), python_model=str(code),
                             pip_requirements=["numpy"])
    assert calls, "save_model no longer calls environment.warn_dependency_requirement_mismatches"
    with _quiet_save():
        mlflow.pyfunc.save_model(path=str(tmp_path / "quiet"), python_model=str(code),
                                 pip_requirements=["numpy"])
    assert len(calls) == 1  # skipped inside _quiet_save
    assert environment.warn_dependency_requirement_mismatches is not original  # monkeypatched
