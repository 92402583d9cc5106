"""Paired comparison of two models on the same CV folds: the Nadeau-Bengio corrected resampled t-test.

Fold scores of two models on the same folds are paired, so their per-fold differences cancel the
fold-to-fold difficulty that dominates each model's own spread. The folds' training sets overlap,
so the differences are correlated and the plain paired t-test is far too confident; Nadeau and
Bengio (2003) correct the variance by (1/n + n_test/n_train), which keeps the test's size close to
its nominal level with repeated k-fold CV (Bouckaert and Frank, 2004). It needs only the per-fold
scores and SciPy's t distribution, and its interval reads directly as "gain, lower bound, upper bound".
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

from dag_factory.artifacts.records import PairedComparison
from dag_factory.spec.schema import LOWER_IS_BETTER, ExperimentSpec

#: How the leaderboard's intervals are computed, in one sentence (shown in the leaderboard and the card).
COMPARISON_RULE = ("paired differences on the same CV folds; Nadeau-Bengio corrected resampled t interval "
                   "(variance x (1/n + n_test/n_train), t with n-1 degrees of freedom)")


def gains(metric: str, scores: Sequence[float], reference: Sequence[float]) -> np.ndarray:
    """Per-fold gain of ``scores`` over ``reference`` on ``metric``: positive means better, for losses too."""
    a, b = np.asarray(scores, dtype=float), np.asarray(reference, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired scores need the same folds: {a.size} against {b.size}")
    return b - a if metric in LOWER_IS_BETTER else a - b


def corrected_interval(differences: np.ndarray, folds: int, confidence: float) -> tuple[float, float, float, float]:
    """Mean, lower and upper bound, and two-sided p-value of per-fold ``differences`` of ``folds``-fold CV.

    Each fold tests on 1/folds of the rows and trains on the rest, so n_test/n_train = 1/(folds-1).
    Identical differences on every fold (two identical models) give a zero-width interval and p = 1
    when they are zero; NaN differences (a metric undefined on a fold) give an undefined comparison.
    """
    n = differences.size
    mean = float(np.mean(differences))
    if n < 2 or not np.all(np.isfinite(differences)):
        return mean, -math.inf, math.inf, math.nan
    variance = float(np.var(differences, ddof=1)) * (1.0 / n + 1.0 / (folds - 1))
    if variance <= 0.0:
        return mean, mean, mean, 1.0 if mean == 0.0 else 0.0
    se = math.sqrt(variance)
    t_crit = float(stats.t.ppf(0.5 + confidence / 2.0, df=n - 1))
    p_value = float(2.0 * stats.t.sf(abs(mean) / se, df=n - 1))
    return mean, mean - t_crit * se, mean + t_crit * se, p_value


def compare(metric: str, scores: Sequence[float], reference: Sequence[float], against: str, folds: int,
            confidence: float) -> PairedComparison:
    """How much better ``scores`` are than the ``reference`` model's on the same folds, with its interval."""
    diff = gains(metric, scores, reference)
    gain, low, high, p_value = corrected_interval(diff, folds, confidence)
    return PairedComparison(against=against, metric=metric, gain=gain, ci_low=low, ci_high=high,
                            confidence=confidence, p_value=p_value, folds=int(diff.size))


def compare_folds(spec: ExperimentSpec, scores: Sequence[float] | None, reference: Sequence[float] | None,
                  against: str) -> PairedComparison | None:
    """``compare`` on the spec's metric, folds and confidence; None unless both have scores of the same folds."""
    if not scores or not reference or len(scores) != len(reference):
        return None
    return compare(spec.selection.metric, scores, reference, against, spec.cv.folds, spec.selection.confidence)


def is_tied(comparison: PairedComparison) -> bool:
    """Whether the interval holds zero: no credible difference either way."""
    return not comparison.ci_high < 0.0 and not comparison.ci_low > 0.0


def credibly_better(comparison: PairedComparison, margin: float) -> bool:
    """Whether the whole interval lies above ``margin``: the gain is credible and large enough."""
    return comparison.ci_low > margin
