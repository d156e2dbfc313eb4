"""The verdicts of the paper's claims: paired by seed, Student-t intervals and a permutation
test of the trend, the pre-declared decision between the readings of SCCP's update."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cvpt.demo.claims import (
    CLAIMS,
    decide,
    evaluate_claims,
    format_claims,
    paired_difference,
    rank_trend,
)


def _runs(top1: list[float], seeds=None) -> list[dict]:
    return [{"seed": s, "top1": t} for s, t in zip(seeds or range(len(top1)), top1, strict=True)]


def test_paired_difference_is_the_t_interval_of_the_per_seed_differences():
    a, b = _runs([0.9, 0.8, 0.7]), _runs([0.5, 0.5, 0.5])
    d = paired_difference(a, b)
    assert d["differences"] == pytest.approx([0.4, 0.3, 0.2]) and d["mean"] == pytest.approx(0.3)
    half = 4.302652729749464 * 0.1 / math.sqrt(3)  # t(0.975, 2) · sd / √n
    assert (d["low"], d["high"]) == pytest.approx((0.3 - half, 0.3 + half))
    assert d["verdict"] == "holds"
    assert paired_difference(b, a)["verdict"] == "contradicted"


def test_pairing_is_what_tells_apart_a_small_consistent_difference():
    # the seeds move both cells alike: unpaired std bars overlap, the paired differences agree
    a, b = _runs([0.62, 0.82, 0.42, 0.72]), _runs([0.60, 0.80, 0.40, 0.70])
    assert paired_difference(a, b)["verdict"] == "holds"
    # the same means with the differences of opposite sign: not told apart
    c = _runs([0.70, 0.72, 0.40, 0.76])
    assert paired_difference(c, b)["verdict"] == "unresolved"


def test_pairs_only_common_seeds_and_one_seed_has_no_interval():
    d = paired_difference(_runs([0.9, 0.8], [0, 7]), _runs([0.5, 0.4], [7, 9]))
    assert d["seeds"] == [7] and d["low"] is None and d["verdict"] == "unresolved"
    with pytest.raises(ValueError, match="no seed in common"):
        paired_difference(_runs([0.9], [0]), _runs([0.5], [1]))


def test_no_verdict_from_two_seeds_or_the_same_difference_in_every_seed():
    # top-1 moves in steps of one test video: equal differences are common, and have no spread
    one_video = paired_difference(_runs([100 / 135, 90 / 135, 80 / 135]),
                                  _runs([99 / 135, 89 / 135, 79 / 135]))  # fmt: skip
    assert one_video["verdict"] == "unresolved" and "same value" in one_video["note"]
    two = paired_difference(_runs([0.9, 0.7]), _runs([0.5, 0.4]))
    assert two["low"] is not None and two["verdict"] == "unresolved" and "fewer" in two["note"]


def test_rank_trend_is_calibrated_on_noise():
    # top-1 that does not depend on k: a 95% test calls a trend either way in ~2.5% each
    rng = np.random.default_rng(1)
    verdicts = []
    for _ in range(200):
        top1 = {k: _runs([rng.binomial(135, 0.6) / 135 for _ in range(3)]) for k in range(5)}
        verdicts.append(rank_trend(top1)["verdict"])
    assert verdicts.count("holds") <= 10 and verdicts.count("contradicted") <= 10


def test_rank_trend_reads_a_rising_a_falling_and_a_flat_curve():
    rising = {k: _runs([0.3 + 0.1 * k + 0.01 * s for s in range(5)]) for k in range(5)}
    falling = {k: _runs([0.9 - 0.1 * k + 0.02 * (s % 2) for s in range(5)]) for k in range(5)}
    up, down = rank_trend(rising), rank_trend(falling)
    assert up["rho"] == pytest.approx(1.0) and up["verdict"] == "holds"
    assert down["rho"] == pytest.approx(-1.0) and down["verdict"] == "contradicted"
    # each seed ranks the k differently: no trend the seeds agree on
    noisy = {k: _runs([[0.5, 0.9, 0.1, 0.6, 0.3][(k + s) % 5] for s in range(5)]) for k in range(5)}
    assert rank_trend(noisy)["verdict"] == "unresolved"


def _cells(depth: int, reading_gain: dict[str, float]) -> dict:
    """A results.json ``methods`` where every claim's better cell is ``gain`` above the other."""
    base = {"Linear probe": 0.25, "VPT*": 0.5, "AdaptFormer*": 0.5, "SCCP blocks = 0": 0.4,
            "CVPT w/o residual prompt": 0.5}  # fmt: skip
    cells = dict(base)
    for r, g in reading_gain.items():
        cells |= {f"SCCP blocks = {k} ({r})": 0.4 + g * k for k in range(1, depth + 1)}
        cells |= {f"CVPT w/o attention ({r})": 0.4, f"CVPT, random frozen backbone ({r})": 0.4}
    # a seed moves every cell a little, each cell its own way: differences with a spread
    return {
        n: {
            "runs": _runs(
                list(v + 0.01 * np.arange(3) + np.random.default_rng(i).uniform(0, 0.005, 3))
            )
        }
        for i, (n, v) in enumerate(cells.items())
    }


def test_claims_and_the_decision_follow_the_pre_declared_criterion():
    claims = evaluate_claims(_cells(4, {"replace": -0.05, "add": 0.1}), 4, ("replace", "add"))
    assert [c["id"] for c in claims["add"]] == [c.id for c in CLAIMS]
    add = {c["id"]: c["verdict"] for c in claims["add"]}
    replace = {c["id"]: c["verdict"] for c in claims["replace"]}
    assert add == dict.fromkeys(add, "holds")  # every gain is 10 points per block
    assert replace["C1"] == "holds"  # the same cells under both readings
    assert replace["C2"] == replace["C3"] == replace["C4"] == "contradicted"
    d = decide(claims)
    assert d["reading"] == "add" and d["counts"]["add"]["holds"] == len(CLAIMS)
    assert "C7" in format_claims(claims, d) and "'add'" in format_claims(claims, d)


def test_decision_ties_go_to_fewer_contradicted_then_to_the_literal_reading():
    row = lambda *vs: [{"verdict": v} for v in vs]  # noqa: E731
    tie = {"add": row("holds", "unresolved"), "replace": row("holds", "contradicted")}
    assert decide(tie)["reading"] == "add"
    tie = {"add": row("holds", "unresolved"), "replace": row("unresolved", "holds")}
    assert decide(tie)["reading"] == "replace"


def test_a_claim_whose_cells_did_not_run_says_so_and_names_them():
    methods = _cells(4, {"add": 0.1})
    del methods["SCCP blocks = 3 (add)"], methods["CVPT w/o attention (add)"]
    claims = {c["id"]: c for c in evaluate_claims(methods, 4, ("add",))["add"]}
    assert claims["C5"]["verdict"] == "not run"
    assert claims["C5"]["missing"] == ["CVPT w/o attention (add)"]
    # Fig. 4 over the k that ran, which it names
    assert claims["C4"]["k"] == [0, 1, 2, 4]
    assert claims["C4"]["missing"] == ["SCCP blocks = 3 (add)"]
    assert claims["C4"]["verdict"] == "holds"
    d = decide({"add": list(claims.values())})
    assert d["counts"]["add"] == {"holds": 7, "contradicted": 0, "unresolved": 0, "not run": 1}
    text = format_claims({"add": list(claims.values())}, d)
    assert "not all cells ran: C4 (add): SCCP blocks = 3 (add); C5 (add)" in text
