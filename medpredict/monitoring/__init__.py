"""Models over time: keeping a deployed risk model right as case mix and practice change.

``updating`` holds the clinical hierarchy of model updating (recalibration in the large,
logistic recalibration, model revision, refitting); ``closed_test`` the closed testing
procedure that picks the least extensive update the new data support; ``comparison``
the champion-challenger comparison of two models on the same recent patients with
paired bootstrap intervals; ``binary`` how all three read a deployed binary model
(``docs/monitoring.md``). Import the submodule you need: importing this package imports
none of them.
"""
