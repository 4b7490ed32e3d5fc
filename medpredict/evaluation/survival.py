"""Time-to-event metrics in NumPy: Kaplan–Meier, concordance, time-dependent AUC, Brier.

Conventions follow scikit-survival 0.28 (the tests check agreement to 1e-10): a higher
risk score means an earlier event; concordance counts an event patient against everyone
still event-free after their event time (and censored patients tied at that time);
inverse-probability-of-censoring weights (IPCW) come from the Kaplan–Meier estimate of
the censoring distribution, ``G``. Every function takes the rows in any order; the
bootstraps of :mod:`medpredict.survival.scoring` call them on resampled rows.

The concordance count is a suffix-dominance count over blocks of rows,
``O(n sqrt(n))`` NumPy work instead of a Python loop over pairs, so a bootstrap of
1,000 resamples of 7,000 patients takes seconds.

Examples
--------
>>> import numpy as np
>>> time = np.array([2.0, 3.0, 4.0, 5.0, 8.0]); event = np.array([1, 0, 1, 1, 0])
>>> risk = np.array([0.9, 0.1, 0.7, 0.8, 0.0])
>>> round(harrell_c(time, event, risk), 3)
0.857
>>> km = KaplanMeier.fit(time, event)
>>> [round(float(s), 3) for s in km(np.array([1.0, 2.0, 4.5]))]
[1.0, 0.8, 0.533]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

TIED_RISK = 1e-8  # risks closer than this count as tied (scikit-survival's tied_tol)
_BLOCK = 64  # smallest block of the concordance count


@dataclass(frozen=True)
class KaplanMeier:
    """A Kaplan–Meier survival curve: a right-continuous step function of time.

    ``reverse=True`` estimates the censoring distribution ``G(t) = P(C > t)``; at tied
    times events come first (scikit-survival's convention).
    """

    times: np.ndarray
    survival: np.ndarray

    @staticmethod
    def fit(time: np.ndarray, event: np.ndarray, reverse: bool = False) -> KaplanMeier:
        time = np.asarray(time, dtype=float)
        event = np.asarray(event).astype(bool)
        unique, inverse = np.unique(time, return_inverse=True)
        events = np.bincount(inverse, weights=event.astype(float), minlength=unique.size)
        total = np.bincount(inverse, minlength=unique.size).astype(float)
        at_risk = np.cumsum(total[::-1])[::-1]
        if reverse:
            at_risk = at_risk - events
            events = total - events
        ratio = np.divide(events, at_risk, out=np.zeros(unique.size), where=events > 0)
        return KaplanMeier(unique, np.cumprod(1.0 - ratio))

    def __call__(self, t: np.ndarray | float) -> np.ndarray:
        """S(t): 1 before the first time, the last value after the last time."""
        idx = np.searchsorted(self.times, np.asarray(t, dtype=float), side="right") - 1
        return np.where(idx < 0, 1.0, self.survival[np.maximum(idx, 0)])


def event_weights(time: np.ndarray, event: np.ndarray) -> np.ndarray:
    """``event_i / G(time_i-)``: inverse-probability-of-censoring weights of the events.

    ``G(t-)``, the probability of still being followed just before ``t``, is the reverse
    Kaplan–Meier curve's value before its step at ``t``; censored rows weigh 0. Weighted
    by these, the observed events stand for the events of everyone, censored or not,
    when censoring is independent of the event.

    Examples
    --------
    >>> event_weights(np.array([50.0, 100.0, 150.0, 200.0]),
    ...               np.array([True, False, True, False])).round(3).tolist()
    [1.0, 0.0, 1.5, 0.0]
    """
    time = np.asarray(time, dtype=float)
    event = np.asarray(event).astype(bool)
    g = KaplanMeier.fit(time, event, reverse=True)
    before = np.searchsorted(g.times, time, side="left") - 1
    still_followed = np.where(before < 0, 1.0, g.survival[np.maximum(before, 0)])
    weight = np.divide(1.0, still_followed, out=np.zeros_like(still_followed),
                       where=still_followed > 0)
    return np.where(event, weight, 0.0)


def _inverse_g(g: KaplanMeier, t: np.ndarray) -> np.ndarray:
    value = g(t)
    return np.divide(1.0, value, out=np.zeros_like(value), where=value > 0)


def _suffix_counts(
    values: np.ndarray, start: np.ndarray, low: np.ndarray, high: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For each query q: how many of ``values[start[q]:]`` are < low[q], and <= high[q].

    Positions are cut into blocks of about sqrt(n). ``before[k, b]`` counts the k
    smallest values that lie in blocks before b, so whole blocks are a lookup and only
    the query's own block is compared value by value.
    """
    n = values.size
    size = max(_BLOCK, int(np.ceil(np.sqrt(n))))
    n_blocks = -(-n // size)
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    in_block = np.zeros((n + 1, n_blocks + 1), dtype=np.int32)
    in_block[np.arange(1, n + 1), order // size + 1] = 1
    before = np.cumsum(np.cumsum(in_block, axis=0), axis=1)
    block_of = np.minimum(start // size, n_blocks - 1)
    padded = np.full(n_blocks * size, np.nan)
    padded[:n] = values
    own = padded.reshape(n_blocks, size)[block_of]
    position = np.arange(size)[None, :] + (block_of * size)[:, None]
    mine = position >= start[:, None]
    counts = []
    for bound, side, compare in ((low, "left", np.less), (high, "right", np.less_equal)):
        rank = np.searchsorted(ordered, bound, side=side)
        later = rank - before[rank, block_of + 1]
        counts.append(later + np.sum(mine & compare(own, bound[:, None]), axis=1))
    return counts[0], counts[1]


def _concordance(
    time: np.ndarray, event: np.ndarray, risk: np.ndarray, weights: Sequence[np.ndarray]
) -> list[float]:
    """Concordance (ties count 1/2) for each weighting of the earlier (event) patient."""
    time = np.asarray(time, dtype=float)
    event = np.asarray(event).astype(bool)
    order = np.lexsort((~event, time))  # by time, events before censored rows at a time
    time, event, risk = time[order], event[order], np.asarray(risk, dtype=float)[order]
    # an event is comparable to every later time and to censored rows at its own time
    key = np.searchsorted(np.unique(time), time) * 2 + (~event)
    rows = np.flatnonzero(event)
    start = np.searchsorted(key, key[rows], side="right")
    below, upto = _suffix_counts(risk, start, risk[rows] - TIED_RISK, risk[rows] + TIED_RISK)
    wins = below + 0.5 * (upto - below)
    out = []
    for weight in weights:
        w = np.asarray(weight, dtype=float)[order][rows]
        comparable = float(np.sum(w * (time.size - start)))
        out.append(float(np.sum(w * wins)) / comparable if comparable else float("nan"))
    return out


def concordances(
    time: np.ndarray,
    event: np.ndarray,
    risk: np.ndarray,
    censoring: KaplanMeier | None = None,
    tau: float | None = None,
) -> tuple[float, float]:
    """Harrell's and Uno's concordance from one count of the pairs.

    Harrell's C is the share of comparable pairs the risk orders correctly; Uno's
    weights each event patient by ``1 / G(t)^2`` (censoring-adjusted) and counts only
    events before ``tau``. NaN when no pair is comparable.

    Parameters
    ----------
    censoring : the censoring distribution ``G`` (default: estimated on these rows).
    tau : truncation time of Uno's C (default: none).
    """
    time = np.asarray(time, dtype=float)
    event = np.asarray(event).astype(bool)
    g = censoring or KaplanMeier.fit(time, event, reverse=True)
    uno = np.where(event, _inverse_g(g, time) ** 2, 0.0)
    if tau is not None:
        uno[time >= tau] = 0.0  # still compared against, never the earlier patient
    harrell, uno_value = _concordance(time, event, risk, [np.ones(time.size), uno])
    return harrell, uno_value


def harrell_c(time: np.ndarray, event: np.ndarray, risk: np.ndarray) -> float:
    """Harrell's concordance index (see :func:`concordances`)."""
    return _concordance(time, event, risk, [np.ones(np.size(time))])[0]


def uno_c(
    time: np.ndarray,
    event: np.ndarray,
    risk: np.ndarray,
    censoring: KaplanMeier | None = None,
    tau: float | None = None,
) -> float:
    """Uno's IPCW concordance up to ``tau`` (see :func:`concordances`)."""
    return concordances(time, event, risk, censoring, tau)[1]


def cumulative_dynamic_auc(
    time: np.ndarray,
    event: np.ndarray,
    risk: np.ndarray,
    horizon: float,
    censoring: KaplanMeier | None = None,
) -> float:
    """Time-dependent AUC at ``horizon``: events by then (IPCW) against patients event-free.

    ``risk`` may be the risk score or the predicted risk of an event by ``horizon``.
    """
    time = np.asarray(time, dtype=float)
    event = np.asarray(event).astype(bool)
    risk = np.asarray(risk, dtype=float)
    g = censoring or KaplanMeier.fit(time, event, reverse=True)
    cases = event & (time <= horizon)
    controls = np.sort(risk[time > horizon])
    if not cases.any() or controls.size == 0:
        return float("nan")
    w = _inverse_g(g, time[cases])
    r = risk[cases]
    below = np.searchsorted(controls, r, side="left")
    upto = np.searchsorted(controls, r, side="right")
    wins = below + 0.5 * (upto - below)
    return float(np.sum(w * wins) / (np.sum(w) * controls.size))


def brier_terms(
    time: np.ndarray,
    event: np.ndarray,
    survival: np.ndarray,
    times: np.ndarray,
    censoring: KaplanMeier,
) -> np.ndarray:
    """Each row's IPCW Brier term at each of ``times``; the Brier score is their mean.

    Kept per row so a bootstrap resample's Brier score is a mean over its rows.
    """
    time = np.asarray(time, dtype=float)
    event = np.asarray(event).astype(bool)
    times = np.asarray(times, dtype=float)
    case = (time[:, None] <= times[None, :]) & event[:, None]
    control = time[:, None] > times[None, :]
    return (np.square(survival) * case * _inverse_g(censoring, time)[:, None]
            + np.square(1.0 - survival) * control * _inverse_g(censoring, times)[None, :])


def brier_scores(
    time: np.ndarray,
    event: np.ndarray,
    survival: np.ndarray,
    times: np.ndarray,
    censoring: KaplanMeier | None = None,
) -> np.ndarray:
    """IPCW Brier score (Graf et al. 1999) at each of ``times``.

    Parameters
    ----------
    survival : predicted survival probability, one row per patient, one column per time.
    censoring : the censoring distribution ``G`` (default: estimated on these rows).
    """
    g = censoring or KaplanMeier.fit(time, event, reverse=True)
    return brier_terms(time, event, survival, times, g).mean(axis=0)


def integrated_brier(
    time: np.ndarray,
    event: np.ndarray,
    survival: np.ndarray,
    times: np.ndarray,
    censoring: KaplanMeier | None = None,
) -> float:
    """Brier score integrated over ``times`` (trapezoids) and divided by their span."""
    times = np.asarray(times, dtype=float)
    scores = brier_scores(time, event, survival, times, censoring)
    return float(np.trapezoid(scores, times) / (times[-1] - times[0]))


def cox_slope(time: np.ndarray, event: np.ndarray, covariate: np.ndarray) -> float:
    """Coefficient of a one-covariate Cox model (Breslow ties), by Newton's method.

    With the covariate ``log(-log S(h | x))`` and follow-up stopped at ``h`` this is the
    calibration slope at horizon ``h``: 1 when the predictions are neither too extreme
    (< 1) nor too modest (> 1). NaN when there is no event or the fit does not converge.
    """
    order = np.argsort(time, kind="stable")
    time = np.asarray(time, dtype=float)[order]
    event = np.asarray(event).astype(bool)[order]
    z = np.asarray(covariate, dtype=float)[order]
    if not event.any() or np.ptp(z) == 0:
        return float("nan")
    z = z - z.mean()
    # the risk set of an event at time t is every row with time >= t: a suffix
    first = np.searchsorted(time, time, side="left")
    beta = 0.0
    for _ in range(50):
        e = np.exp(beta * z)
        s0 = np.cumsum(e[::-1])[::-1][first]
        s1 = np.cumsum((e * z)[::-1])[::-1][first]
        s2 = np.cumsum((e * z * z)[::-1])[::-1][first]
        mean = s1 / s0
        gradient = np.sum((z - mean)[event])
        information = np.sum((s2 / s0 - mean**2)[event])
        if information <= 0:
            return float("nan")
        step = gradient / information
        beta += float(np.clip(step, -5, 5))
        if abs(step) < 1e-9:
            return beta
    return float("nan")


def _stopped_at(
    time: np.ndarray, event: np.ndarray, horizon: float
) -> tuple[np.ndarray, np.ndarray]:
    """Follow-up administratively censored at ``horizon``."""
    time = np.asarray(time, dtype=float)
    return np.minimum(time, horizon), np.asarray(event).astype(bool) & (time <= horizon)


def calibration_slope(
    time: np.ndarray, event: np.ndarray, survival_at_horizon: np.ndarray, horizon: float
) -> float:
    """Calibration slope at ``horizon`` (see :func:`cox_slope`)."""
    s = np.clip(np.asarray(survival_at_horizon, dtype=float), 1e-12, 1 - 1e-12)
    t, e = _stopped_at(time, event, horizon)
    return cox_slope(t, e, np.log(-np.log(s)))


def calibration_groups(
    time: np.ndarray,
    event: np.ndarray,
    risk_at_horizon: np.ndarray,
    horizon: float,
    n_groups: int = 5,
) -> list[dict[str, float]]:
    """Mean predicted against Kaplan–Meier observed risk at ``horizon`` by risk group.

    Groups are quantiles of predicted risk; each gives ``n``, ``predicted`` and
    ``observed`` (1 - KM at the horizon).
    """
    risk = np.asarray(risk_at_horizon, dtype=float)
    edges = np.unique(np.quantile(risk, np.linspace(0, 1, n_groups + 1)))
    group = np.clip(np.searchsorted(edges, risk, side="right") - 1, 0, max(edges.size - 2, 0))
    out = []
    for g in np.unique(group):
        rows = group == g
        km = KaplanMeier.fit(time[rows], event[rows])
        out.append({
            "n": int(rows.sum()),
            "predicted": float(risk[rows].mean()),
            "observed": float(1.0 - km(horizon)),
        })
    return out


def net_benefit_at(
    time: np.ndarray,
    event: np.ndarray,
    risk_at_horizon: np.ndarray,
    horizon: float,
    thresholds: Sequence[float],
) -> dict[str, np.ndarray]:
    """Decision curve at ``horizon`` with Kaplan–Meier event rates (Vickers et al. 2008).

    Returns ``model``, ``treat_all`` and ``threshold`` arrays: net benefit of treating
    patients whose predicted risk is at least the threshold, or everyone.
    """
    time = np.asarray(time, dtype=float)
    event = np.asarray(event).astype(bool)
    risk = np.asarray(risk_at_horizon, dtype=float)
    pts = np.asarray(thresholds, dtype=float)
    overall = 1.0 - float(KaplanMeier.fit(time, event)(horizon))
    model = np.empty(pts.size)
    for k, pt in enumerate(pts):
        treated = risk >= pt
        share = treated.mean()
        if share == 0:
            model[k] = 0.0
            continue
        events = 1.0 - float(KaplanMeier.fit(time[treated], event[treated])(horizon))
        model[k] = share * (events - (1 - events) * pt / (1 - pt))
    treat_all = overall - (1 - overall) * pts / (1 - pts)
    return {"threshold": pts, "model": model, "treat_all": treat_all}
