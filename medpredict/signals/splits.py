"""Patient-level splits that refuse to leak a patient into both train and test.

Examples
--------
>>> import numpy as np
>>> groups = np.array(["a", "a", "b", "c"])
>>> [groups[test].tolist() for _, test in leave_one_patient_out(groups)]
[['a', 'a'], ['b'], ['c']]
>>> check_patient_split(groups[:2], groups[1:])
Traceback (most recent call last):
...
medpredict.signals.splits.PatientLeakError: patient(s) ['a'] are in both train and test
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


class PatientLeakError(ValueError):
    """A patient's data sit on both sides of a train/test split."""


def check_patient_split(train_groups: np.ndarray, test_groups: np.ndarray) -> None:
    """Raise :class:`PatientLeakError` if any patient is in both ``train`` and ``test``."""
    shared = sorted(set(np.asarray(train_groups).tolist()) & set(np.asarray(test_groups).tolist()))
    if shared:
        raise PatientLeakError(f"patient(s) {shared} are in both train and test")


def leave_one_patient_out(groups: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(train_index, test_index)`` holding out one patient at a time, checked."""
    groups = np.asarray(groups)
    for patient in np.unique(groups):
        test = np.flatnonzero(groups == patient)
        train = np.flatnonzero(groups != patient)
        check_patient_split(groups[train], groups[test])
        yield train, test
