"""Wearable time series: tidy ingestion, personal-baseline early-warning detectors, alerts.

Alerts from this package describe changes from a person's own usual pattern. They are
informational and are not a diagnosis.

Examples
--------
>>> from medpredict.wearables import WearableStore, daily_features, make_detectors
>>> store = WearableStore()
>>> sorted(type(d).__name__ for d in make_detectors())
['BaselineDeviationForest', 'CuSumDetector', 'OvernightRHRAlert']
"""

from medpredict.wearables.alerts import build_alerts, lifestyle_insights, write_alerts
from medpredict.wearables.cusum import CuSumDetector, OnlineCuSum
from medpredict.wearables.daily import daily_features
from medpredict.wearables.monitor import make_detectors, monitor_path, monitor_store
from medpredict.wearables.multivariate import BaselineDeviationForest
from medpredict.wearables.overnight import OvernightRHRAlert
from medpredict.wearables.readers import read_path, read_stream_csv, read_welltory
from medpredict.wearables.resting import RestingHeartRate
from medpredict.wearables.store import IngestSummary, WearableStore

__all__ = [
    "BaselineDeviationForest",
    "CuSumDetector",
    "IngestSummary",
    "OnlineCuSum",
    "OvernightRHRAlert",
    "RestingHeartRate",
    "WearableStore",
    "build_alerts",
    "daily_features",
    "lifestyle_insights",
    "make_detectors",
    "monitor_path",
    "monitor_store",
    "read_path",
    "read_stream_csv",
    "read_welltory",
    "write_alerts",
]
