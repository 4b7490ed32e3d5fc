"""Wearable time series: tidy ingestion, personal-baseline early-warning detectors, alerts.

Alerts from this package describe changes from a person's own usual pattern. They are
informational and are not a diagnosis.
"""
