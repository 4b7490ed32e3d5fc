"""DeepSurv's published train/test splits (SUPPORT, METABRIC, Rotterdam -> GBSG, WHAS).

The HDF5 files of Katzman et al. (2018) hold ``x`` (covariates), ``t`` (time) and ``e``
(event) for a ``train`` and a ``test`` group; :func:`deepsurv_split` reads one as two
tables with columns ``x0 .. x<k>``, ``time`` and ``event``, ready for a study spec
(``medpredict datasets fetch deepsurv`` downloads them, checksummed).

Examples
--------
>>> train, test = deepsurv_split("whas")
>>> train.shape, test.shape
((1310, 8), (328, 8))
"""

from __future__ import annotations

import pandas as pd

from medpredict.optional import require
from medpredict.settings import require_data

SPLITS = {
    "support": "survival/support_train_test.h5",
    "metabric": "survival/metabric_IHC4_clinical_train_test.h5",
    "gbsg": "survival/gbsg_cancer_train_test.h5",
    "whas": "survival/whas_train_test.h5",
}
"""Name -> file in the reference-data layout (``gbsg``: train Rotterdam, test GBSG)."""


def deepsurv_split(name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ``(train, test)`` tables of DeepSurv's split ``name`` (see :data:`SPLITS`)."""
    if name not in SPLITS:
        raise ValueError(f"unknown DeepSurv split {name!r}; expected one of: {', '.join(SPLITS)}")
    h5py = require("h5py", extra="survival")
    tables = []
    with h5py.File(require_data(SPLITS[name]), "r") as handle:
        for part in ("train", "test"):
            group = handle[part]
            x = group["x"][:]
            table = pd.DataFrame(x, columns=[f"x{k}" for k in range(x.shape[1])])
            table["time"] = group["t"][:].astype(float)
            table["event"] = group["e"][:].astype(int)
            tables.append(table)
    return tables[0], tables[1]
