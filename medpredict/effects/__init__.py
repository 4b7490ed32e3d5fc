"""Individual treatment effects: who benefits from a treatment, and by how much.

:mod:`.learners` estimates the conditional average treatment effect (CATE) with T-, S-,
X- and doubly robust learners over any scikit-learn outcome model; by default each
arm's outcome model is chosen among several by cross-validated error
(:class:`~medpredict.effects.learners.SelectedModel`). :mod:`.evaluation` tests whether
the estimated heterogeneity is real on held-out patients (RATE / AUTOC, Qini), the
value of treating by predicted benefit, effects by subgroup, and the accuracy against
known effects in semi-synthetic data (PEHE).

The estimates rest on two assumptions a clinician can check: no unmeasured
confounding (in observational data, everything that drove both the treatment choice
and the outcome is among the features; randomisation guarantees it) and overlap
(every kind of patient had a real chance of either treatment).
"""
