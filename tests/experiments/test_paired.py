"""Paired comparison over seeds: hand-computed statistics, then a real sweep's report."""
from __future__ import annotations

import csv
import math

import pytest

from experiments.paired import (ONE_SEED_NOTE, compare_with_best, csv_fields, markdown_lines,
                                t_quantile, verdict_lines)
from tests.experiments.conftest import parent_and_children, run_train

# Student t quantiles t_{0.975, df} from a printed table.
T_975 = {2: 4.302653, 3: 3.182446}

# best_val_loss by arm and seed; "best" is the reference arm.
TABLE = {
    "best": {"0": 0.50, "1": 0.40, "2": 0.45, "3": 0.60},
    "worse": {"0": 0.51, "1": 0.43, "2": 0.47, "3": 0.62},
    "tied_once": {"0": 0.50, "1": 0.42, "2": 0.44, "3": 0.63},
    "missing": {"0": 0.55, "1": 0.44, "2": 0.50, "7": 0.10},  # no seed 3; seed 7 unpaired
    "failed": {},
}


def test_t_quantiles_match_the_table():
    for df, value in T_975.items():
        assert t_quantile(df + 1) == pytest.approx(value, abs=1e-6)


def test_worse_arm_by_hand():
    r = compare_with_best(TABLE, "best")["worse"]
    # d = 0.01, 0.03, 0.02, 0.02; mean 0.02; deviations -0.01, 0.01, 0, 0
    # sd = sqrt(2e-4 / 3) = 0.0081650; half = 3.182446 * 0.0081650 / 2 = 0.0129924
    assert r.n_pairs == 4 and (r.wins, r.losses, r.ties) == (0, 4, 0)
    assert r.diff == pytest.approx(0.02)
    assert r.sd == pytest.approx(0.0081650, abs=1e-7)
    assert r.low == pytest.approx(0.0070076, abs=1e-6)
    assert r.high == pytest.approx(0.0329924, abs=1e-6)
    assert r.verdict == "worse than the best in 4 of 4 seeds, difference +0.0200 [+0.0070, +0.0330]"


def test_a_tie_counts_as_a_tie_and_an_interval_over_zero_is_not_a_difference():
    r = compare_with_best(TABLE, "best")["tied_once"]
    # d = 0, 0.02, -0.01, 0.03; mean 0.01; deviations -0.01, 0.01, -0.02, 0.02
    # sd = sqrt(1e-3 / 3) = 0.0182574; half = 3.182446 * 0.0182574 / 2 = 0.0290515
    assert (r.wins, r.losses, r.ties) == (1, 2, 1)
    assert r.diff == pytest.approx(0.01)
    assert r.sd == pytest.approx(0.0182574, abs=1e-7)
    assert r.low == pytest.approx(-0.0190515, abs=1e-6)
    assert r.high == pytest.approx(0.0390515, abs=1e-6)
    assert r.verdict.startswith("not distinguishable from the best with 4 seeds (better in 1, "
                                "worse in 2, tied in 1), difference +0.0100 [-0.0191, +0.0391]")


def test_a_missing_seed_pairs_only_the_common_seeds():
    r = compare_with_best(TABLE, "best")["missing"]
    # seeds 0, 1, 2: d = 0.05, 0.04, 0.05; mean 0.0466667; sd = sqrt(6.6667e-5 / 2) = 0.0057735
    # half = 4.302653 * 0.0057735 / sqrt(3) = 0.0143422
    assert r.n_pairs == 3 and (r.wins, r.losses, r.ties) == (0, 3, 0)
    assert r.diff == pytest.approx(0.0466667, abs=1e-7)
    assert r.low == pytest.approx(0.0323245, abs=1e-6)
    assert r.high == pytest.approx(0.0610088, abs=1e-6)
    assert r.verdict.startswith("worse than the best in 3 of 3 seeds")


def test_the_best_arm_and_an_arm_without_runs():
    results = compare_with_best(TABLE, "best")
    assert list(results) == list(TABLE)
    assert results["best"].is_best and results["best"].n_pairs == 4
    failed = results["failed"]
    assert failed.n_pairs == 0 and failed.diff is None and "not compared" in failed.verdict
    row = csv_fields(failed, "best_val_loss")
    assert row["paired_n"] == "0" and row["paired_diff"] == "" and row["paired_wins"] == ""


def test_one_seed_gives_a_difference_but_no_interval():
    table = {"a": {"0": 0.30}, "b": {"0": 0.35}}
    r = compare_with_best(table, "a")["b"]
    assert r.n_pairs == 1 and r.diff == pytest.approx(0.05) and r.losses == 1
    assert r.low is None and r.high is None and r.sd is None
    assert r.verdict == ("worse than the best on its one paired seed (difference +0.0500); one "
                         "seed cannot separate arms")
    lines = verdict_lines(compare_with_best(table, "a"), table, "best_val_loss")
    assert lines == [ONE_SEED_NOTE] and "seeds=5" in ONE_SEED_NOTE
    assert ONE_SEED_NOTE in "\n".join(markdown_lines(compare_with_best(table, "a"), table,
                                                     "best_val_loss"))


def test_equal_differences_give_a_point_interval_never_nan():
    table = {"a": {"0": 0.5, "1": 0.25, "2": 0.75},
             "shifted": {"0": 0.75, "1": 0.5, "2": 1.0},  # +0.25 on every seed
             "same": {"0": 0.5, "1": 0.25, "2": 0.75}}
    results = compare_with_best(table, "a")
    shifted, same = results["shifted"], results["same"]
    assert (shifted.diff, shifted.low, shifted.high, shifted.sd) == (0.25, 0.25, 0.25, 0.0)
    assert shifted.verdict == ("worse than the best in 3 of 3 seeds, difference +0.250 "
                               "[+0.250, +0.250]")
    assert (same.diff, same.low, same.high, same.ties) == (0.0, 0.0, 0.0, 3)
    assert same.verdict == "identical to the best in all 3 seeds"
    # 0.1 three times: its float mean is 0.10000000000000002 and its float sd 1.7e-17, not 0
    flat = compare_with_best({"a": {"0": 0.0, "1": 0.0, "2": 0.0},
                              "b": {"0": 0.1, "1": 0.1, "2": 0.1}}, "a")["b"]
    assert (flat.diff, flat.low, flat.high, flat.sd) == (0.1, 0.1, 0.1, 0.0)
    text = "\n".join(verdict_lines(results, table, "best_val_loss")
                     + markdown_lines(results, table, "best_val_loss"))
    assert "nan" not in text.lower() and "inf" not in text.lower()


def test_higher_is_better_for_accuracy_and_diverged_seeds_are_named():
    table = {"a": {"0": 0.80, "1": 0.70, "2": 0.90}, "b": {"0": 0.90, "1": 0.80, "2": 0.95}}
    r = compare_with_best(table, "a", higher_is_better=True, diverged={"b": {"1"}})["b"]
    # d = 0.10, 0.10, 0.05: the arm is better on every seed
    assert (r.wins, r.losses) == (3, 0) and r.diff == pytest.approx(0.25 / 3)
    assert r.verdict.startswith("better than the best in 3 of 3 seeds")
    assert "diverged in 1 of 3 paired seeds" in r.verdict
    # a non-finite score leaves its seed out
    r = compare_with_best({"a": table["a"], "b": {**table["b"], "2": math.nan}}, "a",
                          higher_is_better=True)["b"]
    assert r.n_pairs == 2


# ---------------------------------------------------------------- a real sweep's report
def _csv(path):
    with open(path, newline="") as fh:
        return {row["arm"]: row for row in csv.DictReader(fh)}


def test_a_real_sweep_reports_paired_statistics(client, tracking_uri, tmp_path, capsys):
    from experiments.report import main

    proc = run_train(["-m", "dataset=iris", "optimizer=sgd,adam", "seed=0,1,2",
                      "trainer.max_epochs=2"], tracking_uri, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    parent, children, _ = parent_and_children(client)
    best = parent.data.tags["best_arm"]
    scores: dict[str, dict[str, dict[str, float]]] = {}
    for child in children:
        scores.setdefault(child.data.tags["ann.arm"], {})[child.data.params["seed"]] = \
            child.data.metrics
    assert sorted(scores) == ["optimizer=adam", "optimizer=sgd"] and best in scores
    other = next(arm for arm in scores if arm != best)

    def by_hand(key: str) -> tuple[float, float, float]:
        d = [scores[other][s][key] - scores[best][s][key] for s in ("0", "1", "2")]
        mean = sum(d) / 3
        sd = math.sqrt(sum((x - mean) ** 2 for x in d) / 2)
        half = T_975[2] * sd / math.sqrt(3)
        return mean, mean - half, mean + half

    rows = _csv(tmp_path / "multirun" / "report" / "summary.csv")
    row = rows[other]
    assert row["paired_score"] == "best_val_loss" and row["paired_n"] == "3"
    assert sum(int(row[k]) for k in ("paired_wins", "paired_losses", "paired_ties")) == 3
    wins = sum(scores[other][s]["best_val_loss"] < scores[best][s]["best_val_loss"]
               for s in ("0", "1", "2"))
    assert int(row["paired_wins"]) == wins
    for got, want in zip((row["paired_diff"], row["paired_diff_low"], row["paired_diff_high"]),
                         by_hand("best_val_loss")):
        assert float(got) == pytest.approx(want, rel=1e-5, abs=1e-9)
    assert rows[best]["paired_verdict"] == "the best arm (the reference)"

    # the parent's description and the sweep's closing print carry the verdict line
    note = client.get_run(parent.info.run_id).data.tags["mlflow.note.content"]
    line = f"- {other}: {row['paired_verdict']}"
    assert "Each arm against the best, seed by seed (best_val_loss" in note and line in note
    assert line in proc.stderr
    logged = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert "report/paired.png" in logged

    # rebuilt on test accuracy (higher is better); a score the sweep has not: one line, exit 2
    out = tmp_path / "by_accuracy"
    assert main(["--run-id", parent.info.run_id, "--tracking-uri", tracking_uri, "--out",
                 str(out), "--score", "test_accuracy"]) == 0
    row = _csv(out / "summary.csv")[other]
    assert row["paired_score"] == "test_accuracy"
    assert float(row["paired_diff"]) == pytest.approx(by_hand("test_accuracy")[0], abs=1e-9)
    capsys.readouterr()
    for bad in ("test_rmse", "accuracy"):
        assert main(["--run-id", parent.info.run_id, "--tracking-uri", tracking_uri,
                     "--out", str(tmp_path / "bad"), "--score", bad]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1, err
        assert f"--score {bad}" in err and "allowed: best_val_loss" in err
