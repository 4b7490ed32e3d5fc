"""Physiological signals: WFDB input, NeuroKit2 ECG/PPG processing, AF detection models."""
