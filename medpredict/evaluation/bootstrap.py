"""Bootstrap 95% confidence intervals for any metric function.

Resampling is stratified by outcome (each resample keeps the class counts, so every
resample can be scored) or, when patient groups are given, clustered by patient (a
patient's rows are drawn together). Intervals are percentile intervals.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import chain

import numpy as np

from medpredict.cluster import fan_out


@dataclass(frozen=True)
class Estimate:
    """A point estimate with a bootstrap confidence interval."""

    value: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.value:.3f} ({self.low:.3f}–{self.high:.3f})"

    def to_dict(self) -> dict[str, float]:
        return {"value": self.value, "low": self.low, "high": self.high}


BLOCK = 100  # resamples per block; each block draws from its own seeded stream


def resample_counts(
    y: np.ndarray,
    n_boot: int,
    seed: int,
    groups: np.ndarray | None = None,
) -> Iterator[np.ndarray]:
    """How many times each row is drawn, for each of ``n_boot`` bootstrap resamples.

    Parameters
    ----------
    y : outcome per row (used for stratification).
    n_boot : number of resamples.
    seed : random seed; the same seed gives the same resamples.
    groups : optional patient id per row; resamples whole patients when given.

    Resamples are produced one at a time, so memory does not grow with ``n_boot``.
    Resample ``i`` belongs to block ``i // BLOCK``, drawn from a stream seeded by
    ``(seed, block)``, so blocks can be drawn apart (on a cluster) and still give
    the same resamples.
    """
    plan = _Resampling.of(y, groups)
    for block, size in _blocks(n_boot):
        yield from plan.counts(seed, block, size)


def _blocks(n_boot: int) -> list[tuple[int, int]]:
    return [(b, min(BLOCK, n_boot - b * BLOCK)) for b in range(-(-n_boot // BLOCK))]


@dataclass(frozen=True)
class _Resampling:
    """What every resample draws from: each patient's group, or each outcome's rows."""

    n: int
    inverse: np.ndarray | None  # group index of each row (patient-clustered)
    strata: list[np.ndarray]  # rows of each outcome (stratified)

    @staticmethod
    def of(y: np.ndarray, groups: np.ndarray | None) -> _Resampling:
        y = np.asarray(y)
        if groups is not None:
            _, inverse = np.unique(np.asarray(groups), return_inverse=True)
            return _Resampling(y.size, inverse, [])
        return _Resampling(y.size, None, [np.flatnonzero(y == v) for v in np.unique(y)])

    def counts(self, seed: int, block: int, size: int) -> Iterator[np.ndarray]:
        """Row counts of the ``size`` resamples of ``block`` (stream seeded by both)."""
        rng = np.random.default_rng([seed, block])
        if self.inverse is not None:
            n_groups = self.inverse.max() + 1
            for _ in range(size):
                group_counts = np.bincount(rng.integers(0, n_groups, n_groups),
                                           minlength=n_groups)
                yield group_counts[self.inverse]
            return
        for _ in range(size):
            counts = np.zeros(self.n, dtype=np.int64)
            for idx in self.strata:
                counts += np.bincount(idx[rng.integers(0, idx.size, idx.size)],
                                      minlength=self.n)
            yield counts


def resample_indices(
    y: np.ndarray,
    n_boot: int,
    seed: int,
    groups: np.ndarray | None = None,
) -> Iterator[np.ndarray]:
    """Row indices of the resamples of :func:`resample_counts`, each in ascending order.

    Ascending indices keep any ordering of the data, so metrics that sort by risk
    run in linear time when the rows are already sorted by risk.
    """
    rows = np.arange(np.asarray(y).size)
    for counts in resample_counts(y, n_boot, seed, groups):
        yield np.repeat(rows, counts)


def bootstrap(
    metrics: Callable[..., dict[str, float]],
    y: np.ndarray,
    *arrays: np.ndarray,
    n_boot: int = 1000,
    seed: int = 0,
    groups: np.ndarray | None = None,
    alpha: float = 0.05,
) -> dict[str, Estimate]:
    """Evaluate ``metrics(y, *arrays)`` with percentile bootstrap intervals.

    Parameters
    ----------
    metrics : function returning ``{name: value}`` for one sample.
    y : outcomes.
    *arrays : further per-row arrays passed to ``metrics`` (e.g. predicted risk).
    n_boot : number of resamples; 0 gives intervals equal to the point estimate.
    seed : random seed.
    groups : optional patient ids for a clustered bootstrap.
    alpha : 1 - confidence level.

    Examples
    --------
    >>> import numpy as np
    >>> from medpredict.evaluation.metrics import binary_metrics
    >>> y = np.array([0, 0, 1, 1, 0, 1, 0, 1]); p = np.linspace(0.1, 0.9, 8)
    >>> est = bootstrap(binary_metrics, y, p, n_boot=200)
    >>> est["auroc"].low <= est["auroc"].value <= est["auroc"].high
    True
    """
    y = np.asarray(y)
    draws = (
        metrics(y[idx], *(a[idx] for a in arrays))
        for idx in resample_indices(y, n_boot, seed, groups)
    )
    return _percentile_intervals(metrics(y, *arrays), draws, alpha)


def bootstrap_weighted(
    metrics: Callable[[np.ndarray | None], dict[str, float]],
    y: np.ndarray,
    n_boot: int = 1000,
    seed: int = 0,
    groups: np.ndarray | None = None,
    alpha: float = 0.05,
) -> dict[str, Estimate]:
    """Like :func:`bootstrap`, for metrics that take each resample as row counts.

    ``metrics(None)`` is the point estimate and ``metrics(counts)`` the value on a
    resample; the resamples are those :func:`bootstrap` draws with the same seed, so
    both give the same intervals. See :class:`medpredict.evaluation.weighted.BinaryScorer`.
    On a cluster (:mod:`medpredict.cluster`) each block of resamples is one task, with
    the same intervals.

    Examples
    --------
    >>> import numpy as np
    >>> from medpredict.evaluation.weighted import BinaryScorer
    >>> y = np.array([0, 0, 1, 1, 0, 1, 0, 1]); p = np.linspace(0.1, 0.9, 8)
    >>> est = bootstrap_weighted(BinaryScorer(y, p), y, n_boot=200)
    >>> est["auroc"].low <= est["auroc"].value <= est["auroc"].high
    True
    """
    plan = _Resampling.of(y, groups)
    calls = ((metrics, plan, seed, block, size) for block, size in _blocks(n_boot))
    scored = fan_out(_score_block, calls)
    return _percentile_intervals(metrics(None), chain.from_iterable(scored), alpha)


def _score_block(
    metrics: Callable[[np.ndarray | None], dict[str, float]],
    plan: _Resampling,
    seed: int,
    block: int,
    size: int,
) -> list[dict[str, float]]:
    """The metrics of one block of resamples (one task on a cluster)."""
    return [metrics(counts) for counts in plan.counts(seed, block, size)]


def _percentile_intervals(
    point: dict[str, float], draws: Iterable[dict[str, float]], alpha: float
) -> dict[str, Estimate]:
    values: dict[str, list[float]] = {k: [] for k in point}
    for sample in draws:
        for k in point:
            values[k].append(sample.get(k, np.nan))
    if not any(values.values()):
        return {k: Estimate(v, v, v) for k, v in point.items()}
    out = {}
    for k, v in point.items():
        finite = np.asarray(values[k], dtype=float)
        finite = finite[np.isfinite(finite)]
        if finite.size == 0:
            out[k] = Estimate(v, float("nan"), float("nan"))
            continue
        low, high = np.quantile(finite, [alpha / 2, 1 - alpha / 2])
        out[k] = Estimate(float(v), float(low), float(high))
    return out
