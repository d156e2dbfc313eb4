"""The paper's qualitative claims, tested on the demo's runs: paired by seed, each difference with
its 95% interval and a verdict; the reading of SCCP's update that more of them hold for.

Every verdict compares two cells trained on the same data with the same seeds (same split of
the data, same initial weights of what is new, same batch order), so a seed's difference
cancels what the seed changes in both. A claim "a > b" *holds* when the 95% interval of
``top1(a) − top1(b)`` excludes 0 above, is *contradicted* when it excludes 0 below, and is
*unresolved* otherwise (docs/design.md records the protocol and the run).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cvpt.demo.stats import average_ranks, t_quantile

LEVEL = 0.95
MIN_SEEDS = 3  # a t-interval on 1 degree of freedom is ±12.7 standard errors
PERMUTATIONS = 4000  # random reorderings of k per seed for the rank correlation's test
INTERVALS = (
    "paired differences: Student-t interval over seeds of the per-seed difference (95%), no "
    "verdict where every seed gives the same difference; rank correlation: the mean of the "
    f"per-seed Spearman ρ, tested against {PERMUTATIONS} reorderings of k within each seed "
    f"(95%, two-sided); no verdict from fewer than {MIN_SEEDS} seeds"
)


@dataclass
class Claim:
    """``a > b`` for every pair in ``pairs`` (cell names; ``{r}`` = the reading, ``{k}`` = the
    backbone's depth); ``trend``: top-1 rises with the number of SCCP blocks."""

    id: str
    source: str
    text: str
    pairs: tuple[tuple[str, str], ...] = ()
    trend: bool = False


CVPT_CELL = "SCCP blocks = {k} ({r})"  # SCCP before every block: CVPT itself
CLAIMS = [
    Claim("C1", "Table 3", "CPR without refinement (0 SCCP blocks) > linear probe",
          (("SCCP blocks = 0", "Linear probe"),)),
    Claim("C2", "Table 3", "SCCP in the first layer only > no SCCP block",
          (("SCCP blocks = 1 ({r})", "SCCP blocks = 0"),)),
    Claim("C3", "Table 3", "SCCP in every layer > in the first layer only",
          ((CVPT_CELL, "SCCP blocks = 1 ({r})"),)),
    Claim("C4", "Fig. 4", "top-1 rises with the number of SCCP blocks (k = 0..depth)",
          trend=True),
    Claim("C5", "Table 4", "SCCP > SCCP without attention",
          ((CVPT_CELL, "CVPT w/o attention ({r})"),)),
    Claim("C6", "Table 4", "SCCP > SCCP without the residual prompt",
          ((CVPT_CELL, "CVPT w/o residual prompt"),)),
    Claim("C7", "Table 1", "CVPT > VPT* and CVPT > AdaptFormer*",
          ((CVPT_CELL, "VPT*"), (CVPT_CELL, "AdaptFormer*"))),
    Claim("C8", "§1", "CVPT on the pre-trained frozen backbone > on a random frozen one",
          ((CVPT_CELL, "CVPT, random frozen backbone ({r})"),)),
]  # fmt: skip


def verdict(lo: float | None, hi: float | None) -> str:
    """``holds`` / ``contradicted`` / ``unresolved`` for an interval of ``a − b`` (None: no
    interval)."""
    if lo is None or hi is None:
        return "unresolved"
    return "holds" if lo > 0 else "contradicted" if hi < 0 else "unresolved"


def t_interval(values, level: float = LEVEL) -> dict:
    """Mean of per-seed ``values`` and its Student-t interval, with the verdict on 0. No
    verdict (``unresolved``, with a ``note``) from fewer than ``MIN_SEEDS`` seeds, or when
    every seed gives the same value: the interval then has no width, and a sign-flip test on
    n ≤ 5 seeds cannot reach 5% either (its smallest p is 2/2^n). ``low``/``high`` are None
    below two seeds."""
    v = np.asarray(values, dtype=float)
    mean = float(v.mean())
    lo = hi = None
    if len(v) >= 2:
        half = t_quantile(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v))
        lo, hi = float(mean - half), float(mean + half)
    out = {"mean": mean, "low": lo, "high": hi, "verdict": verdict(lo, hi)}
    if len(v) < MIN_SEEDS:
        out |= {"verdict": "unresolved", "note": f"fewer than {MIN_SEEDS} seeds"}
    elif np.ptp(v) == 0:
        out |= {"verdict": "unresolved", "note": "the same value in every seed"}
    return out


def paired_difference(a: list[dict], b: list[dict], level: float = LEVEL) -> dict:
    """``top1(a) − top1(b)`` over the seeds both ran (runs are dicts with ``seed`` and
    ``top1``): the per-seed differences, their mean and its Student-t interval
    (:func:`t_interval`)."""
    ta, tb = ({r["seed"]: r["top1"] for r in runs} for runs in (a, b))
    seeds = sorted(set(ta) & set(tb))
    d = [ta[s] - tb[s] for s in seeds]
    if not d:
        raise ValueError("no seed in common: nothing to pair")
    return {"seeds": seeds, "differences": d, **t_interval(d, level)}


def rank_trend(top1: dict[int, list[dict]], level: float = LEVEL, seed: int = 0) -> dict:
    """Whether top-1 rises with k: Spearman's ρ between k and top-1 within each seed (the runs
    ``top1[k]``, over the seeds every k ran), averaged over seeds. The verdict is a permutation
    test: with no trend, the k of each seed's runs are exchangeable, so ρ is compared with its
    distribution over ``PERMUTATIONS`` random reorderings of k within every seed (one-sided p
    below (1 − level)/2 either way decides). It stays exact where every seed ranks the k the
    same way; a percentile bootstrap over 3 seeds, used before, called pure noise a rising
    trend in 9% of simulated data sets, not 2.5%. ``low``/``high``: the Student-t interval of
    the per-seed ρ, for display; no verdict from fewer than ``MIN_SEEDS`` seeds."""
    ks = sorted(top1)
    common = sorted(set.intersection(*({r["seed"] for r in top1[k]} for k in ks)))
    acc = np.array([[{r["seed"]: r["top1"] for r in top1[k]}[s] for s in common] for k in ks])
    per_seed = np.array([_spearman(ks, acc[:, i]) for i in range(len(common))])
    t = t_interval(per_seed, level)
    rho = float(per_seed.mean())
    # the null: ρ of each seed's top-1 ranks against a random order of the k
    rng = np.random.default_rng(seed)
    order = np.argsort(rng.random((PERMUTATIONS, len(ks), len(common))), axis=1)
    ranks = np.stack([average_ranks(acc[:, i]) for i in range(len(common))], axis=1)  # [K, S]
    null = np.array([_rank_corr(order[:, :, i], ranks[:, i]) for i in range(len(common))])
    null = null.mean(0)  # [PERMUTATIONS]
    tol = 1e-9
    p_up = float((1 + (null >= rho - tol).sum()) / (PERMUTATIONS + 1))
    p_down = float((1 + (null <= rho + tol).sum()) / (PERMUTATIONS + 1))
    tail = (1 - level) / 2
    if len(common) < MIN_SEEDS:
        verdict_, note = "unresolved", {"note": f"fewer than {MIN_SEEDS} seeds"}
    else:
        verdict_ = "holds" if p_up < tail else "contradicted" if p_down < tail else "unresolved"
        note = {}
    return {"seeds": common, "k": ks, "top1_mean": acc.mean(1).tolist(),
            "rho_per_seed": per_seed.tolist(), "rho": rho, "low": t["low"], "high": t["high"],
            "p_rising": p_up, "p_falling": p_down, "verdict": verdict_, **note}  # fmt: skip


def _rank_corr(k_order: np.ndarray, y_ranks: np.ndarray) -> np.ndarray:
    """Pearson correlation of the ranks ``k_order`` [P, K] (a permutation of 0..K−1 each) with
    ``y_ranks`` [K]: Spearman's ρ of each reordering (0 where y is constant)."""
    yc = y_ranks - y_ranks.mean()
    if not yc.any():
        return np.zeros(len(k_order))
    kc = k_order - k_order.mean(1, keepdims=True)
    return (kc @ yc) / (np.linalg.norm(kc, axis=1) * np.linalg.norm(yc))


def _spearman(x, y) -> float:
    if np.ptp(y) == 0:  # every k equal: no rank order at all
        return 0.0
    return float(_rank_corr(average_ranks(x)[None], average_ranks(y))[0])


def evaluate_claims(methods: dict, depth: int, readings: tuple[str, ...]) -> dict:
    """``{reading: [claim result, ...]}`` from a results.json's ``methods`` (cells named as
    :func:`cvpt.demo.suite.ablation_variants` names them); a claim with several pairs holds when
    all hold and is contradicted when any is. A claim whose cells did not run is ``not run``
    (with the ``missing`` cells); C4 runs over the k that ran (at least 3) and names the rest."""
    runs = {name: m["runs"] for name, m in methods.items()}
    out = {}
    for r in readings:
        rows = []
        for c in CLAIMS:
            row = {"id": c.id, "source": c.source, "claim": c.text}
            if c.trend:
                cells = {0: "SCCP blocks = 0"} | {
                    k: f"SCCP blocks = {k} ({r})" for k in range(1, depth + 1)
                }
                missing = [n for n in cells.values() if n not in runs]
                have = {k: runs[n] for k, n in cells.items() if n in runs}
                if len(have) < 3:  # a rank order of two points says nothing
                    row |= {"verdict": "not run", "missing": missing}
                else:  # over the k that ran, which the row names
                    row |= rank_trend(have) | ({"missing": missing} if missing else {})
            else:
                pairs = [tuple(n.format(r=r, k=depth) for n in pair) for pair in c.pairs]
                missing = sorted({n for pair in pairs for n in pair if n not in runs})
                if missing:
                    row |= {"verdict": "not run", "missing": missing}
                    rows.append(row)
                    continue
                parts = [{"better": a, "worse": b, **paired_difference(runs[a], runs[b])}
                         for a, b in pairs]  # fmt: skip
                verdicts = {p["verdict"] for p in parts}
                row["pairs"] = parts
                row["verdict"] = (
                    "contradicted" if "contradicted" in verdicts
                    else "holds" if verdicts == {"holds"} else "unresolved"
                )  # fmt: skip
            rows.append(row)
        out[r] = rows
    return out


def decide(claims: dict, literal: str = "replace") -> dict:
    """The pre-declared criterion: the reading with more claims holding; ties: fewer
    contradicted; still tied: the ``literal`` reading."""
    kinds = ("holds", "contradicted", "unresolved", "not run")
    counts = {r: {v: sum(c["verdict"] == v for c in cs) for v in kinds} for r, cs in claims.items()}
    best = min(counts, key=lambda r: (-counts[r]["holds"], counts[r]["contradicted"], r != literal))
    return {
        "criterion": "more claims hold; ties: fewer contradicted; still tied: the literal "
        f"reading ({literal!r})",
        "counts": counts,
        "reading": best,
    }


def format_claims(claims: dict, decision: dict | None = None) -> str:
    """The claim × reading table: per reading the difference in top-1 points (or ρ), its 95%
    interval and the verdict; a claim of two pairs gets a line per pair under its verdict."""
    readings = list(claims)
    width = 34
    head = f"{'claim (paper)':<58}" + "".join(f" {r:>{width}}" for r in readings)
    lines, missed = [head, "-" * len(head)], []
    for i, c in enumerate(claims[readings[0]]):
        label = f"{c['id']} {c['claim']} ({c['source']})"
        rows = [claims[r][i] for r in readings]
        for r, x in zip(readings, rows, strict=True):
            if "missing" in x:
                missed.append(f"{c['id']} ({r}): {', '.join(x['missing'])}")
        if any(x["verdict"] == "not run" for x in rows):
            lines.append(_row(label, [x["verdict"] for x in rows], width))
            continue
        if "rho" in c or len(c["pairs"]) == 1:
            lines.append(_row(label, [_cell(x.get("pairs", [x])[0]) for x in rows], width))
            continue
        lines.append(_row(label, [x["verdict"] for x in rows], width))
        for j, p in enumerate(c["pairs"]):
            lines.append(_row(f"   vs {p['worse']}", [_cell(x["pairs"][j]) for x in rows], width))
    if missed:
        lines.append("not all cells ran: " + "; ".join(missed))
    if decision:
        counts = "; ".join(
            f"{r}: {n['holds']} hold, {n['contradicted']} contradicted, {n['unresolved']} "
            "unresolved" + (f", {n['not run']} not run" if n["not run"] else "")
            for r, n in decision["counts"].items()
        )
        lines.append(f"{counts} → default sccp_update = {decision['reading']!r}")
    lines.append(INTERVALS)
    return "\n".join(lines)


def _row(label: str, cells: list[str], width: int) -> str:
    label = label if len(label) <= 58 else label[:57] + "…"
    return f"{label:<58}" + "".join(f" {c:>{width}}" for c in cells)


def _cell(c: dict) -> str:
    """``+12.3 [+4.5, +20.1] holds`` (top-1 points) or ``ρ +0.90 [+0.70, +1.00] holds``."""
    if "rho" in c:
        return f"{rho_text(c)} {c['verdict']}"
    return f"{_pts(c['mean'])} [{_pts(c['low'])}, {_pts(c['high'])}] {c['verdict']}"


def rho_text(c: dict) -> str:
    """``ρ +0.90 [+0.70, +1.00]`` (``?`` where there is no interval)."""
    lo, hi = (f"{x:+.2f}" if x is not None else "?" for x in (c["low"], c["high"]))
    return f"ρ {c['rho']:+.2f} [{lo}, {hi}]"


def _pts(x: float | None) -> str:
    """Top-1 difference in points, signed; ``?`` where there is no interval."""
    return "?" if x is None else f"{100 * x:+.1f}"
