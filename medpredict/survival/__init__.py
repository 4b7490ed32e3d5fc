"""Time-to-event (survival) studies: ``task: survival`` in a study spec.

The spec's ``survival:`` section (:mod:`.spec`) names the follow-up time, the event
codes and the horizons; :mod:`.outcome` checks them; survival models are registered by
name like every model (:mod:`.models`: Cox, penalised Cox, random survival forest,
LightGBM Cox, averaged ensemble; :mod:`.deep`: DeepSurv, logistic hazard); the runner
(:mod:`.runner`) cross-validates them, :mod:`.scoring` gives the metrics with bootstrap
CIs (on :mod:`medpredict.evaluation.survival`), and :mod:`.outputs` and :mod:`.report`
write the model directory, ``metrics.json`` and the report.
"""
