"""The outcome a treatment effect is measured on: an event, or an event by a horizon.

For a binary outcome the learners model the event itself, so an effect is a
difference in risk. For a time-to-event outcome most patients' follow-up ends before
the horizon without an event, so whether they had it by then is unknown. Their
outcome becomes the inverse-probability-of-censoring-weighted (IPCW) indicator
``1(event by h) / G(T-)``, with ``G`` the Kaplan–Meier curve of censoring (competing
events end follow-up like censoring, as in the cause-specific survival models): its
mean given the features is the risk by ``h`` when censoring does not depend on them,
so the same learners estimate differences in risk by the horizon.

Examples
--------
>>> import numpy as np
>>> time = np.array([50.0, 100.0, 150.0, 200.0, 300.0, 400.0])
>>> event = np.array([True, False, True, False, True, False])
>>> ipcw_risk(time, event, 250.0).round(2).tolist()
[1.0, 0.0, 1.25, 0.0, 0.0, 0.0]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medpredict.evaluation.survival import event_weights


def ipcw_risk(time: np.ndarray, event: np.ndarray, horizon: float) -> np.ndarray:
    """Each patient's IPCW indicator of the event by ``horizon``.

    Parameters
    ----------
    time : follow-up time (to the event, the competing event or censoring).
    event : True where follow-up ended with the event.
    horizon : the time by which the event counts.
    """
    return event_weights(time, event) * (np.asarray(time, dtype=float) <= horizon)


@dataclass
class EffectOutcome:
    """The outcome the learners model, and what its mean is.

    Attributes
    ----------
    y : per patient: the event (0/1), or its IPCW indicator by the horizon.
    event : per patient: the event observed (by the horizon, for a survival task).
    label : what a mean of ``y`` is, e.g. "risk of death by 365 days".
    horizon : the horizon of a survival task, else None.
    """

    y: np.ndarray
    event: np.ndarray
    label: str
    horizon: float | None = None

    def rows(self, rows: np.ndarray) -> EffectOutcome:
        return EffectOutcome(self.y[rows], self.event[rows], self.label, self.horizon)
