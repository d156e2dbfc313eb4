"""The demo's statistics without SciPy (cvpt.demo.stats) against SciPy's own, a test-only
reference: t quantiles over degrees of freedom and levels, ranks with and without ties."""

from __future__ import annotations

import numpy as np
import pytest

from cvpt.demo.claims import _spearman
from cvpt.demo.stats import average_ranks, t_quantile

stats = pytest.importorskip("scipy.stats")


@pytest.mark.parametrize("df", [1, 2, 3, 4, 5, 6, 7, 9, 12, 19, 30, 61, 200])
def test_t_quantile_matches_scipy(df):
    for p in (0.5, 0.6, 0.75, 0.9, 0.95, 0.975, 0.99, 0.995, 0.9995, 0.025, 0.1, 0.3, 1e-4):
        want = stats.t.ppf(p, df)
        assert t_quantile(p, df) == pytest.approx(want, rel=1e-10, abs=1e-12), (p, df)


def test_t_quantile_refuses_what_it_cannot_answer():
    for p, df in ((0.0, 3), (1.0, 3), (0.9, 0), (0.9, 2.5)):
        with pytest.raises(ValueError, match="t_quantile"):
            t_quantile(p, df)


def test_ranks_and_spearman_match_scipy():
    rng = np.random.default_rng(0)
    for n in (1, 2, 3, 5, 8, 13):
        for levels in (2, 3, 100):  # many ties, some, almost none
            x = rng.integers(0, levels, n).astype(float) / 7
            np.testing.assert_allclose(average_ranks(x), stats.rankdata(x), rtol=0, atol=1e-12)
            if n > 1 and np.ptp(x) > 0:
                k = np.arange(n)
                want = stats.spearmanr(k, x).statistic
                assert _spearman(k, x) == pytest.approx(want, abs=1e-12), (n, levels, x)
