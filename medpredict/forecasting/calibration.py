"""Conformal recalibration of forecast intervals from each model's own past errors.

Conformalised quantile regression (Romano, Patterson and Candès 2019) applied in time:
at forecast date ``r`` and horizon ``h``, the non-conformity of each central interval,
``max(low - y, y - high)`` on the ``log1p`` scale, is collected over every location of
the last ``window`` forecast dates whose targets had been reported by ``r``. The
interval is then widened (or narrowed) by the ``(1 - alpha)(1 + 1/n)`` empirical
quantile of those scores. Nothing observed after ``r`` is used; the median is kept.

Examples
--------
>>> import numpy as np
>>> levels = np.array([0.25, 0.5, 0.75])
>>> values = np.tile([[[[9.0, 10.0, 11.0]]]], (30, 1, 1, 1))  # too narrow
>>> truth = np.tile([[[14.0]]], (30, 1, 1)) * np.resize([1, 0.6], 30)[:, None, None]
>>> out = conformal_intervals(values, truth, levels, horizons=[0], lag=1, window=25)
>>> bool(out[-1, 0, 0, 0] < 9.0 and out[-1, 0, 0, 2] > 11.0), round(out[-1, 0, 0, 1], 6)
(True, np.float64(10.0))
"""

from __future__ import annotations

import numpy as np

from medpredict.forecasting.base import finish_quantiles

MIN_SCORES = 20


def conformal_intervals(
    values: np.ndarray,
    truth: np.ndarray,
    levels: np.ndarray,
    horizons: list[int],
    lag: int,
    window: int,
) -> np.ndarray:
    """Recalibrated copy of ``values`` (dates × locations × horizons × levels).

    ``truth`` is (dates × locations × horizons); forecast dates are consecutive periods,
    so the target of date ``d'`` at horizon ``h`` is known from date ``d' + h + lag`` on.
    Dates with fewer than 20 past scores are left as they were.
    """
    logs = np.log1p(values)
    n_levels = len(levels)
    median = logs[..., n_levels // 2]
    observed = np.log1p(truth)
    out = logs.copy()
    pairs = [(k, n_levels - 1 - k) for k in range(n_levels // 2)]
    for j, h in enumerate(horizons):
        for low, high in pairs:
            alpha = 2 * levels[low]
            scores = np.maximum(logs[:, :, j, low] - observed[:, :, j],
                                observed[:, :, j] - logs[:, :, j, high])
            for d in range(len(values)):
                last_known = d - h - lag
                if last_known < 0:
                    continue
                past = scores[max(0, last_known - window + 1): last_known + 1].ravel()
                past = past[np.isfinite(past)]
                if len(past) < MIN_SCORES:
                    continue
                rank = min(1.0, (1 - alpha) * (1 + 1 / len(past)))
                shift = np.quantile(past, rank, method="higher")
                out[d, :, j, low] = np.minimum(logs[d, :, j, low] - shift, median[d, :, j])
                out[d, :, j, high] = np.maximum(logs[d, :, j, high] + shift, median[d, :, j])
    return finish_quantiles(np.expm1(out))
