"""Ingest, build person-days, run the detectors, collect alerts: the monitoring pipeline.

Examples
--------
>>> from medpredict.settings import require_data
>>> result = monitor_path(require_data("wearables/stanford_covid"))  # doctest: +SKIP
>>> result.alerts[["date", "detector", "level"]].head()  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from medpredict.data.errors import DataError
from medpredict.wearables.alerts import build_alerts
from medpredict.wearables.cusum import CuSumDetector
from medpredict.wearables.daily import daily_features
from medpredict.wearables.multivariate import BaselineDeviationForest
from medpredict.wearables.overnight import OvernightRHRAlert
from medpredict.wearables.readers import read_path
from medpredict.wearables.scores import score_frame
from medpredict.wearables.store import IngestSummary, WearableStore

DETECTORS = {
    "overnight": OvernightRHRAlert,
    "cusum": CuSumDetector,
    "multivariate": BaselineDeviationForest,
}


def make_detectors(names: Sequence[str] = tuple(DETECTORS)) -> list:
    """Default-configured detectors by short name (``overnight``, ``cusum``, ``multivariate``)."""
    unknown = [n for n in names if n not in DETECTORS]
    if unknown:
        raise ValueError(f"unknown detectors {unknown}; expected some of {list(DETECTORS)}")
    return [DETECTORS[n]() for n in names]


@dataclass
class MonitorResult:
    """Everything one monitoring run produced."""

    daily: pd.DataFrame
    scores: pd.DataFrame
    alerts: pd.DataFrame
    ingests: list[IngestSummary] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    quarantine: pd.DataFrame = field(default_factory=pd.DataFrame)


def score_daily(daily: pd.DataFrame, detectors: Sequence) -> tuple[pd.DataFrame, dict[str, str]]:
    """Run each detector and stack their scores.

    A detector that is already fitted (e.g. a multivariate detector fitted on a
    reference population) is used as it is; any other is fitted as a copy on ``daily``.
    A detector that cannot run on these data (e.g. too few person-days to fit) is
    skipped, and the reason is returned instead of raised.
    """
    parts, skipped = [], {}
    for detector in detectors:
        try:
            check_is_fitted(detector)
            fitted = detector
        except NotFittedError:
            fitted = None
        try:
            if fitted is None:
                fitted = clone(detector).fit(daily)
            parts.append(fitted.detect(daily))
        except DataError as err:
            skipped[detector.name] = str(err)
    scores = pd.concat(parts, ignore_index=True) if parts else score_frame([])
    return scores, skipped


def monitor_store(store: WearableStore, detectors: Sequence | None = None) -> MonitorResult:
    """Score everyone in ``store`` and build their alerts."""
    daily = daily_features(store)
    scores, skipped = score_daily(daily, detectors if detectors is not None else make_detectors())
    return MonitorResult(daily, scores, build_alerts(scores, daily), skipped=skipped)


def monitor_path(
    path: str | Path,
    timezone: str = "UTC",
    store_path: str | Path | None = None,
    detectors: Sequence | None = None,
    threads: int | None = None,
) -> MonitorResult:
    """Ingest a file or folder (see :func:`read_path`), then :func:`monitor_store`.

    Parameters
    ----------
    path : export file or folder.
    timezone : IANA zone for timestamps without a UTC offset.
    store_path : DuckDB file to append to (kept); ``None`` uses memory.
    detectors : detector instances (default: all three, default settings).
    threads : DuckDB threads.
    """
    with WearableStore(store_path, threads=threads) as store:
        ingests = [
            store.append(frame, timezone=timezone, source=source)
            for source, frame in read_path(path)
        ]
        result = monitor_store(store, detectors)
        result.quarantine = store.quarantine()
    result.ingests = ingests
    return result
