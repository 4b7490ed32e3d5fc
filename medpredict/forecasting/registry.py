"""Forecaster names as a spec writes them, and the one constructor.

Examples
--------
>>> sorted(FORECASTERS)
['arima', 'ets', 'flusight_baseline', 'lightgbm', 'seasonal_naive', 'theta']
>>> make_forecaster("ets", window=52).window
52
"""

from __future__ import annotations

from typing import Any

from medpredict.forecasting.base import Forecaster
from medpredict.forecasting.models import ETS, Arima, FluSightBaseline, SeasonalNaive, Theta
from medpredict.forecasting.pooled import PooledLightGBM

FORECASTERS: dict[str, type[Forecaster]] = {
    "flusight_baseline": FluSightBaseline,
    "seasonal_naive": SeasonalNaive,
    "ets": ETS,
    "theta": Theta,
    "arima": Arima,
    "lightgbm": PooledLightGBM,
}

# Combines the other models' quantiles; built by the rolling evaluation, not fitted.
ENSEMBLE = "ensemble"


def make_forecaster(name: str, **params: Any) -> Forecaster:
    """A new forecaster ``name``; an error names the registered forecasters."""
    if name not in FORECASTERS:
        known = ", ".join([*FORECASTERS, ENSEMBLE])
        raise ValueError(f"unknown forecaster {name!r}; expected one of: {known}")
    try:
        return FORECASTERS[name](**params)
    except TypeError as err:
        raise ValueError(f"forecaster {name!r}: {err}") from None
