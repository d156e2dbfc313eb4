"""The two statistics the demo's claims need, in numpy: Student-t quantiles (integer degrees of
freedom) and average ranks. Exact to float precision (tests compare them with SciPy), so that
cvpt does not depend on SciPy (143 MB) for a few lines of the demo."""

from __future__ import annotations

import math

import numpy as np


def _t_central(theta: float, df: int) -> float:
    """P(|T| ≤ √df·tan θ) for Student's t with ``df`` (≥ 1) degrees of freedom: the finite
    series in θ of Abramowitz & Stegun 26.7.3 / 26.7.4, exact for integer ``df``."""
    s, c = math.sin(theta), math.cos(theta)
    term, total = 1.0, 1.0
    if df % 2 == 0:  # even: sin θ (1 + ½cos²θ + (1·3)/(2·4)cos⁴θ + ...)
        for k in range(2, df, 2):
            term *= (k - 1) / k * c * c
            total += term
        return s * total
    if df == 1:
        return 2 * theta / math.pi
    # odd: (2/π)(θ + sin θ (cos θ + (2/3)cos³θ + ...))
    term = total = c
    for k in range(3, df - 1, 2):
        term *= (k - 1) / k * c * c
        total += term
    return 2 / math.pi * (theta + s * total)


def t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile (0 < p < 1) of Student's t with ``df`` degrees of freedom (an integer
    ≥ 1), as ``scipy.stats.t.ppf(p, df)``; ValueError outside that domain."""
    if not 0 < p < 1 or int(df) != df or df < 1:
        raise ValueError(f"t_quantile needs 0 < p < 1 and an integer df >= 1, got {p}, {df}")
    if p == 0.5:
        return 0.0
    central = abs(2 * p - 1)  # P(|T| ≤ t) for the t sought
    lo, hi = 0.0, math.pi / 2  # bisection on θ = atan(t / √df): the series is monotone in θ
    for _ in range(200):
        mid = (lo + hi) / 2
        if mid in (lo, hi):
            break
        lo, hi = (mid, hi) if _t_central(mid, int(df)) < central else (lo, mid)
    t = math.sqrt(df) * math.tan((lo + hi) / 2)
    return t if p > 0.5 else -t


def average_ranks(values) -> np.ndarray:
    """Ranks 1..n of ``values`` [n], ties given the mean of their ranks (float64 [n]), as
    ``scipy.stats.rankdata``."""
    x = np.asarray(values, dtype=float).ravel()
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(1, len(x) + 1)
    _, group = np.unique(x, return_inverse=True)
    return (np.bincount(group, ranks) / np.bincount(group))[group]
