"""Models over time: keeping a deployed risk model right as case mix and practice change.

Watching: ``drift`` (per-feature and prediction drift: PSI, KS, chi-squared), ``domain``
(a cross-validated domain classifier: its AUROC, importance weights, effective sample
size, support) and ``performance`` (label-free expected performance from calibrated
risks, realised performance once outcomes arrive, both by period with alerts).
Updating: ``updating`` (recalibration in the large, logistic recalibration, model
revision, refitting), ``closed_test`` (the least extensive update the new data
support), ``comparison`` (champion against challenger with paired bootstrap
intervals); ``binary`` is how they read a deployed binary model
(``docs/monitoring.md``). Import the submodule you need: importing this package imports
none of them.
"""
