"""`resume=true`: which jobs of a sweep already have a FINISHED run that can stand for them.

A job is reused when its experiment holds a FINISHED run with the same config digest (the
resolved job config, see config.config_digest; tag `ann.config_digest`), logged from this
checkout's commit with a clean tree, on data with the same digest (tag `dataset_digest`, the
splits' bytes: recomputed here for the job). Anything else trains, and `plan` says why in a
few words per job: no such run, code changed, a dirty tree (then or now), different data.

The new sweep's parent does not adopt the reused runs (a run has one parent, and the sweep
that produced a run keeps it): it lists them in its tags `ann.reused_runs` (`.2`, `.3`, ...
when the ids do not fit one tag value), and its comparison report reads them with its own
children, so the report covers every arm. Every job's folder still exists (the launcher starts
every job); a reused job only says which run it reuses.
"""
from __future__ import annotations

from dataclasses import dataclass

from omegaconf import DictConfig, OmegaConf

from experiments import tracking

REUSED_TAG = "ann.reused_runs"
IDS_PER_TAG = 200  # 200 ids x 33 characters stay below MLflow's 8000-character tag values


@dataclass
class Decision:
    """What resume does with one job: reuse `run_id`, or train (run_id None); `why` in words."""

    number: int
    overrides: list[str]
    run_id: str | None
    why: str


def data_key(task: DictConfig) -> DictConfig:
    """The part of a job config that decides its data (dataset node, seed, dtype)."""
    return OmegaConf.create({"dataset": OmegaConf.to_container(task.dataset, resolve=True),
                             "seed": int(task.seed),
                             "trainer": {"dtype": str(task.trainer.dtype)}})


def finished_runs(client, experiment_id: str) -> dict[str, list]:
    """FINISHED runs of the experiment that carry a config digest, by digest, newest first."""
    by_digest: dict[str, list] = {}
    token = None
    while True:
        page = client.search_runs([experiment_id], filter_string="attributes.status = 'FINISHED'",
                                  max_results=1000, order_by=["attributes.start_time DESC"],
                                  page_token=token)
        for run in page:
            digest = run.data.tags.get("ann.config_digest")
            if digest:
                by_digest.setdefault(digest, []).append(run)
        token = page.token
        if not token:
            return by_digest


def plan(client, experiment_id: str, jobs: list[list[str]], digests: list[str],
         data_keys: list[DictConfig], data_digest) -> list[Decision]:
    """One Decision per job (in job order). `data_digest(data key)` is the digest the job's run
    would log as `dataset_digest` (the sweep passes the runner's own data loading)."""
    commit, dirty = tracking.git_info()
    runs = finished_runs(client, experiment_id)
    data_digests: dict[str, str] = {}
    decisions = []
    for number, (job, digest, key) in enumerate(zip(jobs, digests, data_keys)):
        found = runs.get(digest, [])
        if not found:
            decisions.append(Decision(number, job, None, "no FINISHED run with this config"))
            continue
        newest = found[0].info.run_id
        if dirty or commit == "unknown":
            decisions.append(Decision(number, job, None, (
                "this checkout has uncommitted changes in ann/, experiments/ or conf/, so its "
                f"code is not the code of run {newest}") if commit != "unknown" else
                "this checkout is not a git repository: its code version is unknown"))
            continue
        same_code = [r for r in found if r.data.tags.get("mlflow.source.git.commit") == commit
                     and r.data.tags.get("git_dirty") == "false"]
        if not same_code:
            logged = found[0].data.tags
            why = (f"run {newest} was logged from uncommitted changes"
                   if logged.get("mlflow.source.git.commit") == commit else
                   f"code changed: run {newest} was logged at commit "
                   f"{logged.get('mlflow.source.git.commit', 'unknown')[:10]}, this checkout is "
                   f"{commit[:10]}")
            decisions.append(Decision(number, job, None, why))
            continue
        text = OmegaConf.to_yaml(key, sort_keys=True)
        if text not in data_digests:
            data_digests[text] = data_digest(key)
        now = data_digests[text]
        match = next((r for r in same_code if r.data.tags.get("dataset_digest") == now), None)
        if match is None:
            decisions.append(Decision(number, job, None, (
                f"the data differ: run {same_code[0].info.run_id} has dataset digest "
                f"{same_code[0].data.tags.get('dataset_digest', '?')[:12]}, now {now[:12]}")))
            continue
        decisions.append(Decision(number, job, match.info.run_id,
                                  f"reuses FINISHED run {match.info.run_id}"))
    return decisions


def reused_tags(run_ids: list[str]) -> dict[str, str]:
    """The parent's tags listing the reused runs (none when nothing is reused)."""
    tags = {}
    for i, start in enumerate(range(0, len(run_ids), IDS_PER_TAG)):
        key = REUSED_TAG if i == 0 else f"{REUSED_TAG}.{i + 1}"
        tags[key] = ",".join(run_ids[start:start + IDS_PER_TAG])
    return tags


def reused_run_ids(tags: dict[str, str]) -> list[str]:
    """The runs a parent reuses (see reused_tags), in order."""
    ids, i = [], 1
    while (value := tags.get(REUSED_TAG if i == 1 else f"{REUSED_TAG}.{i}")) is not None:
        ids += [r for r in value.split(",") if r]
        i += 1
    return ids
