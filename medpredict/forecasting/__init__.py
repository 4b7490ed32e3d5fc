"""Population forecasts: counts per location and period (admissions, outbreaks).

``medpredict forecast spec.yaml`` reads the counts (:mod:`.data`), makes rolling-origin
forecasts with every model in the spec (:mod:`.rolling`), recalibrates their intervals
from past errors (:mod:`.calibration`), scores them against the baseline (:mod:`.scoring`)
and writes the latest forecast with a report (:mod:`.outputs`, :mod:`.report`).
"""
