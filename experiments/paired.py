"""Paired comparison of a sweep's arms with its best arm, seed by seed.

Every arm of a comparison preset runs with the same split, initial weights and batch order
for a given seed, so two arms' results on one seed form a pair. For each arm and the best
arm, over the seeds both have a score for (n pairs):

    d_s  = score(arm, s) - score(best, s)              the paired difference on seed s
    mean = (1/n) sum_s d_s
    sd   = sqrt( sum_s (d_s - mean)^2 / (n - 1) )       sample standard deviation
    CI   = mean -+ t_{0.975, n-1} * sd / sqrt(n)        95% interval, Student t, n - 1 df

A seed is a win for the arm when its score is better than the best arm's (lower for a loss
or rmse, higher for accuracy), a loss when worse, a tie when equal. An interval that excludes
0 gives "better" or "worse"; one that contains 0 gives "not distinguishable". All d_s equal
gives sd = 0 and the interval [mean, mean]. One pair has a difference but no interval.
Plain numbers in, plain results out: no MLflow, no matplotlib.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# The scores a report can pair on, and whether higher is better.
SCORES = {"best_val_loss": False, "test_loss": False, "test_accuracy": True,
          "test_rmse": False}
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Paired:
    """One arm against the best arm. `wins`/`losses`/`ties` are from the arm's side;
    `diff`, `low`, `high` are arm minus best (None without pairs; low/high None with one)."""

    arm: str
    n_pairs: int
    wins: int = 0
    losses: int = 0
    ties: int = 0
    diff: float | None = None
    sd: float | None = None
    low: float | None = None
    high: float | None = None
    verdict: str = ""
    is_best: bool = False


def t_quantile(n_pairs: int, confidence: float = CONFIDENCE) -> float:
    """Two-sided Student t quantile t_{(1+confidence)/2, n_pairs-1}."""
    from scipy.stats import t

    return float(t.ppf(0.5 + confidence / 2.0, n_pairs - 1))


def compare_pair(arm: str, scores: dict[str, float], best: dict[str, float], *,
                 higher_is_better: bool = False, confidence: float = CONFIDENCE) -> Paired:
    """`arm`'s scores {seed: score} against the best arm's, on the seeds both have."""
    seeds = [s for s in scores if s in best]
    if not seeds:
        return Paired(arm, 0, verdict=("no seed in common with the best arm: not compared"
                                       if scores else "no finished run with a score: not "
                                       "compared"))
    d = np.array([scores[s] - best[s] for s in seeds], dtype=float)
    better = -d if not higher_is_better else d  # > 0: the arm did better on that seed
    wins, losses = int(np.sum(better > 0)), int(np.sum(better < 0))
    ties = len(seeds) - wins - losses
    n, mean = len(seeds), float(d.mean())
    if n == 1:
        return Paired(arm, 1, wins, losses, ties, mean, verdict=_one_seed(wins, losses, mean))
    if np.all(d == d[0]):  # a point interval (in floats 0.1 x 3 has mean 0.1 + 2e-17, sd 2e-17)
        mean, sd, low, high = float(d[0]), 0.0, float(d[0]), float(d[0])
    else:
        sd = float(d.std(ddof=1))
        half = t_quantile(n, confidence) * sd / math.sqrt(n)
        low, high = mean - half, mean + half
    result = Paired(arm, n, wins, losses, ties, mean, sd, low, high)
    return _with_verdict(result, higher_is_better)


def compare_with_best(table: dict[str, dict[str, float]], best: str, *,
                      higher_is_better: bool = False, confidence: float = CONFIDENCE,
                      diverged: dict[str, set[str]] | None = None) -> dict[str, Paired]:
    """Every arm of `table` ({arm: {seed: score}}) against `best`, in the table's order.
    Non-finite scores are left out (that seed is not paired). `diverged` ({arm: seeds}) adds
    to an arm's verdict how many of its paired seeds diverged (their scores come from the
    epochs before the divergence: the runs were rolled back to the last completed one)."""
    clean = {arm: {s: float(v) for s, v in seeds.items() if math.isfinite(v)}
             for arm, seeds in table.items()}
    reference = clean.get(best, {})
    out = {}
    for arm, scores in clean.items():
        if arm == best:
            out[arm] = Paired(arm, len(scores), is_best=True,
                              verdict="the best arm (the reference)")
            continue
        result = compare_pair(arm, scores, reference, higher_is_better=higher_is_better,
                              confidence=confidence)
        hit = [s for s in (diverged or {}).get(arm, ()) if s in scores and s in reference]
        if hit:
            from dataclasses import replace

            result = replace(result, verdict=f"{result.verdict}; diverged in {len(hit)} of "
                             f"{result.n_pairs} paired seeds (scored on its epochs before "
                             "diverging)")
        out[arm] = result
    return out


def fmt_diff(*values: float) -> list[str]:
    """Differences with their signs, all to the same decimals: 3 significant digits of the
    largest (+0.0174 [+0.0001, +0.0348]; never NaN text)."""
    largest = max(abs(v) for v in values)
    if largest == 0:
        return ["0" for _ in values]
    decimals = max(0, 2 - math.floor(math.log10(largest)))
    return [f"{v:+.{decimals}f}" for v in values]


def _one_seed(wins: int, losses: int, diff: float) -> str:
    side = "better than" if wins else "worse than" if losses else "tied with"
    return (f"{side} the best on its one paired seed (difference {fmt_diff(diff)[0]}); one "
            "seed cannot separate arms")


def _with_verdict(r: Paired, higher_is_better: bool) -> Paired:
    from dataclasses import replace

    interval = "difference {} [{}, {}]".format(*fmt_diff(r.diff, r.low, r.high))
    if r.ties == r.n_pairs:
        text = f"identical to the best in all {r.n_pairs} seeds"
    elif r.low > 0 or r.high < 0:
        arm_better = (r.low > 0) == higher_is_better
        count = r.wins if arm_better else r.losses
        text = (f"{'better' if arm_better else 'worse'} than the best in {count} of "
                f"{r.n_pairs} seeds, {interval}")
    else:
        text = (f"not distinguishable from the best with {r.n_pairs} seeds (better in "
                f"{r.wins}, worse in {r.losses}"
                + (f", tied in {r.ties}" if r.ties else "") + f"), {interval}")
    return replace(r, verdict=text)


def one_seed_only(table: dict[str, dict[str, float]]) -> bool:
    """True when no arm has more than one seed: nothing to pair over."""
    return all(len(seeds) <= 1 for seeds in table.values())


ONE_SEED_NOTE = ("One seed per arm: one seed cannot separate arms (the ranking may be luck of "
                 "the draw). Run with seeds=5 to compare arms seed by seed.")


def verdict_lines(results: dict[str, Paired], table: dict[str, dict[str, float]],
                  score: str, *, higher_is_better: bool = False) -> list[str]:
    """Plain lines for the parent's description: a heading, then one line per arm."""
    if not results:
        return ["Paired over seeds: no best arm to compare with."]
    if one_seed_only(table):
        return [ONE_SEED_NOTE]
    lines = [f"Each arm against the best, seed by seed ({score}, "
             f"{'higher' if higher_is_better else 'lower'} is better; difference = arm minus "
             f"best, mean [{CONFIDENCE:.0%} interval, Student t]):", ""]
    lines += [f"- {r.arm}: {r.verdict}" for r in results.values() if not r.is_best]
    return lines


def markdown_lines(results: dict[str, Paired], table: dict[str, dict[str, float]], score: str,
                   *, higher_is_better: bool = False) -> list[str]:
    """The paired section of summary.md: a heading, how to read it, one table row per arm."""
    lines = [f"### Paired against the best arm, seed by seed ({score})", ""]
    if not results:
        return lines + ["No best arm (every arm failed or diverged): nothing to compare with."]
    if one_seed_only(table):
        return lines + [ONE_SEED_NOTE]
    lines += [f"Difference = arm minus best on the seeds both finished ({score}: "
              f"{'higher' if higher_is_better else 'lower'} is better), mean over the pairs "
              f"with its {CONFIDENCE:.0%} interval (Student t, n - 1 degrees of freedom); "
              "better / worse / tied count the seeds where the arm beat, lost to or equalled "
              "the best. Figure: report/paired.png.", "",
              "| arm | pairs | better / worse / tied | verdict |", "|---|---|---|---|"]
    for r in results.values():
        counts = "-" if r.is_best or not r.n_pairs else f"{r.wins} / {r.losses} / {r.ties}"
        cells = (r.arm, str(r.n_pairs), counts, r.verdict)
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return lines


PAIRED_COLUMNS = ("paired_score", "paired_n", "paired_wins", "paired_losses", "paired_ties",
                  "paired_diff", "paired_diff_low", "paired_diff_high", "paired_verdict")


def csv_fields(result: Paired | None, score: str) -> dict[str, str]:
    """An arm's paired columns of summary.csv (empty strings where there is no value)."""
    if result is None:
        return {k: "" for k in PAIRED_COLUMNS} | {"paired_score": score}

    def num(value: float | None) -> str:
        return "" if value is None else repr(value)

    counted = not result.is_best and result.n_pairs > 0
    return {"paired_score": score, "paired_n": str(result.n_pairs),
            "paired_wins": str(result.wins) if counted else "",
            "paired_losses": str(result.losses) if counted else "",
            "paired_ties": str(result.ties) if counted else "",
            "paired_diff": num(result.diff), "paired_diff_low": num(result.low),
            "paired_diff_high": num(result.high), "paired_verdict": result.verdict}
