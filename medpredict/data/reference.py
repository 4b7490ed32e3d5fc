"""The reference datasets medpredict's tests and benchmarks use: sources, licences, checksums.

Each file has the checksum of its official download (``official``) and the sha256 of the
file at the same relative path in a medpredict data mirror laid out like
``../shared/data`` (``mirror``). The two are the same file except where a mirror holds
a re-saved copy (BreastMNIST: labels of shape ``(N,)`` instead of the official
``(N, 1)``); the loaders accept both layouts. ``medpredict datasets fetch`` downloads and
verifies them (:mod:`medpredict.data.download`).

Examples
--------
>>> REFERENCE_DATASETS["breastmnist"].files[0].relative
'images/breastmnist_28.npz'
>>> dataset_holding("ecg/cpsc2021/data_21_7.hea").name
'cpsc2021'
"""

from __future__ import annotations

from dataclasses import dataclass

from medpredict.data.errors import DataError


@dataclass(frozen=True)
class Digest:
    """The expected content of one file: a checksum and, where known, its size in bytes."""

    algorithm: str
    value: str
    size: int | None = None


@dataclass(frozen=True)
class ReferenceFile:
    """One file: where it lives in the data layout, its source URL and its checksums."""

    relative: str
    url: str
    official: Digest
    mirror: Digest


@dataclass(frozen=True)
class ReferenceDataset:
    """A real public dataset, with its provenance and the files medpredict reads."""

    name: str
    description: str
    source: str
    licence: str
    files: tuple[ReferenceFile, ...]

    @property
    def size(self) -> int:
        """Total bytes of the files in the mirror layout."""
        return sum(f.mirror.size or 0 for f in self.files)


def _same_as_source(folder: str, base_url: str, manifest: str) -> tuple[ReferenceFile, ...]:
    """Files whose mirror copy is the source file itself (``sha256 size name`` lines)."""
    files = []
    for line in manifest.strip().splitlines():
        sha256, size, name = line.split()
        digest = Digest("sha256", sha256, int(size))
        files.append(ReferenceFile(f"{folder}/{name}", f"{base_url}/{name}", digest, digest))
    return tuple(files)


_GITHUB = "https://raw.githubusercontent.com"

# BreastMNIST's official file and MD5 as listed by the medmnist package (v3.0.2, info.py).
_BREASTMNIST = ReferenceFile(
    "images/breastmnist_28.npz",
    "https://zenodo.org/records/10519652/files/breastmnist.npz?download=1",
    Digest("md5", "750601b1f35ba3300ea97c75c52ff8f6"),
    Digest("sha256", "5e68d79723fb3a63a399b0a66b66451799fc2eb3651f469cec0b679cfd743b68", 559574),
)

_FLUSIGHT = Digest(
    "sha256", "35d93cdb12dbb7a091d576e0d5b8b239138aebf1f686268a9f0200d73c90509c", 571217
)
_ABSTRACTS = Digest(
    "sha256", "1eecea73c9ecad292c55e10403bd139fab9580545d6878482997c5564d51ac05", 3586836
)

REFERENCE_DATASETS: dict[str, ReferenceDataset] = {
    d.name: d
    for d in [
        ReferenceDataset(
            "breastmnist",
            "BreastMNIST 28x28 breast ultrasound, official train/val/test splits (780 images)",
            "MedMNIST v2, Yang et al., Scientific Data 10:41 (2023); Zenodo record 10519652",
            "CC BY 4.0",
            (_BREASTMNIST,),
        ),
        ReferenceDataset(
            "cpsc2021",
            "CPSC 2021 paroxysmal AF: 18 two-lead ECG records of 6 patients, rhythm annotations",
            "China Physiological Signal Challenge 2021 via PhysioNet; torch_ecg sample data",
            "CC BY 4.0 (data); MIT (torch_ecg)",
            _same_as_source(
                "ecg/cpsc2021",
                f"{_GITHUB}/DeepPSP/torch_ecg/3256344ad3c72adf63299d376fea6200ed881db3"
                "/sample-data/cpsc2021",
                """
834bee935d03fd69bf89eedb47249bfcb1eb862d99d15e9ef34ddfb0b2705f86 2066 data_8_2.atr
b27ff331a212a46a3bc8d579882164786bc1f814adf5bffc090ba2bc13bb8bac 172368 data_8_2.dat
653ba8c37056348daf22bd535861234892bb1b0f46b1e692447720f9c6ebf8a0 187 data_8_2.hea
005f3a404c2ace73ae7d9c7effd1ec2134271bb587d0d5bbf1c22c17b24cef9f 2626 data_8_3.atr
014e5b224334b1d121e398f43ed36ca8b4b0ca19047dc5735332b6d7cd6a633b 214444 data_8_3.dat
276e85b5e078b3afc6df690bce78fe3c4067c4944d43f1e035d78ba959fb5961 187 data_8_3.hea
611e2c70f6317dceb60edbd505b05a7f92901882a7797311e6d877b998f41cf6 426 data_8_4.atr
9d4cd00fba4f8f687382028b88ec6faa2be4635e14a08acc686f1d9dfcd75cbc 32940 data_8_4.dat
3756d187a70345cd86c7299f3b0245cbed8066c3ba7ea9aacb5b2d80727d1112 189 data_8_4.hea
8148ce17a266108fca1daf81bf28e4e9fd399f7eeb1cb0e71f9dad48bac0b436 552 data_21_7.atr
ed5e7e56a099e18282d48a47c30415b3f59e79d2ff5b34b84d7ffd906d65ccdc 188804 data_21_7.dat
71547ef57eb8fbc40b767012bfda77d532404b66e50d33247e6af32235761535 187 data_21_7.hea
52c87eb58cd8a99de988729ff5ffc3c936419ed84c2466b226e204aaa72e66ba 1212 data_21_8.atr
ec637b40b648fb147f5e277ac5840f1ed8358f1686f1ded03b50acfd2d4a1204 414536 data_21_8.dat
e34a46960cef7610db1483f7847fbbf6fee0133ed118baef94ed5b1bca020298 190 data_21_8.hea
97b9f8c0216814088262b1880fb767049fdd13df3ba1fc1862427ec4e9977976 916 data_21_9.atr
f115dac5bd943e5e048ee45f5ea359d0af10c5e9c1a3ce44448ad5d06ed59d8b 302356 data_21_9.dat
262b3f8ba92aa55022dda84be0cff060246c49b2035b039d970cd5122e5957b8 187 data_21_9.hea
2109370ccaf12d558f68272b73e4e65b3b5dca4dd669b9afea34e28d0cc636e0 290 data_35_4.atr
534efcc0ed91550a00cde3bd3fd51abd111c0bc82502bf7b1ff50da62af6777d 134780 data_35_4.dat
679d3d09b107d3321b47ba57da72acac187a195af0dfca23e0237ccf9b64a85d 180 data_35_4.hea
0a8cc98f51c30cdb6f011d3d1f321371b111b1cb1932c5eec37c966ff104b84f 218 data_35_6.atr
1123945a47eaec31d37faa8fce6de14178f4abb5f432e7fcebf09496727cc4f4 107488 data_35_6.dat
adb923569ac81c96be21e40fbda2ac954b350c9935eab2719e28b45b1959b027 183 data_35_6.hea
1914ab170f214f7e788a83bf74fd72f698a867b1f9db40598cdd575a9f5e18d1 230 data_35_10.atr
cf6e538f11ba025fb01c6021cd12977155a5adec77c6a995b3f827e4f793ffd1 136640 data_35_10.dat
32617d8bb579ddc08715010e4d0e599bcf6b77243d58221282e7409e7429a014 181 data_35_10.hea
52fdaab0219e648cfcb4d8fa10f243182f08fd5b697e2e7889d38fcb09d82ccb 5122 data_84_1.atr
b6b2c5465e88af37972cd9447223e620dce92248e8fc313d143aa38d6793265c 415232 data_84_1.dat
5691115ccb34641a26954cbb3343d975b3a070f14703767c2a415b428b7a3108 186 data_84_1.hea
3917dd113821a65d6474aae127fe8b5685e5f12ab8d4c72e525e7abc214b53d1 3274 data_84_2.atr
e0a3e05d39f51144ed8705c5ad6ed509b75bdb2282cecb64fa5748310f310b17 286568 data_84_2.dat
310cb8db8c5f9ce9ccea0b6023d80cd0dafc6fb90fc403dad9ba4044480abc28 195 data_84_2.hea
f74c8e46a09d0364b66a08901a84a47d5d2afbc5562d743a180e62e937d330a7 1738 data_84_3.atr
aca3ac375ae7cfe7c21e305c8865522dbb4b6339562ab4a3c34a54a224625530 158052 data_84_3.dat
7d4adbda50425abc1e23361601f445d2721eebc4568ed37602d5c426c67a497e 189 data_84_3.hea
503d5a2eb8420a7a66fb3afcb39b429eb14ac8e77738c056130d4250fdd3efdd 820 data_92_4.atr
c107a77c7a5c10acac83a0068ebbce1173774d5afac9af3524bea9cce5325bd0 331612 data_92_4.dat
25f85af1a1fe338eebca30292374fb2775cfb5430b51f0e1f1a2d13f8f51f893 192 data_92_4.hea
7b64aa5b340252df6ad4d1e22b193b420ae62f2a035e801e25f666e17375d1a7 160 data_92_12.atr
3262b02cb60d4755c315958742a1b1676104590544a22bd58a163c6651bfa988 39116 data_92_12.dat
ebe6a23ef3b743668aaea0232024fd06124c674ed03c65f7f69490ea7470198e 196 data_92_12.hea
7da8362adebf9e214a76649c8097a2a9c5d70642928b13e81cdec3fc1e5b88fe 1006 data_92_19.atr
2d2ae93d1bb1e5d344d3d1875eb3e81314e1348f8a9b9d1ec23a8fdc8ffc8d1b 289960 data_92_19.dat
69764b65dd757304b455142496f6ff99d067251702a4821ab2ab2a11447e4992 197 data_92_19.hea
11e60486a47fce6dc116272844e77b6e4e41e2c00f912d929d984d6bf7736448 458 data_101_6.atr
7b4a72b5f8222bedaecf879416c3b64dd7314ab6da2ea8d73fe1a4dd797e0782 89420 data_101_6.dat
54d2d45397e67d1061b1d0704de129dea3630e2deb4560be3bec85241bea454e 198 data_101_6.hea
1f43ddc1363d5f6ff6f7b675f96b20885dd3b213ec1a4dde7679ddf8da3194af 520 data_101_8.atr
23ed970b3ff53b700577dfe1be5b45c8efda558b44f3fbc0354d1c637aae6971 96976 data_101_8.dat
907a7f5594fa1e658f54cbcb0be3d6acd74cb08d4b16fba9d5ccdff493fd37e4 194 data_101_8.hea
493e3e287672fbe73ae695de5e64d47c78613a92969d03a08baf851200c8ac58 654 data_101_9.atr
b93866a6d475772e37fc0417b4de29150a26662e3588987fd920af4f2d1e189e 199356 data_101_9.dat
2b67682288e7e5535b7fb77dae6fc802c5f11227c93f1fdef728cd02a9a34f42 196 data_101_9.hea
""",
            ),
        ),
        ReferenceDataset(
            "welltory",
            "Welltory COVID-19 and wearables: 185 participants, daily wearables, HRV, surveys",
            "Welltory/hrv-covid19 repository on GitHub",
            "CC0",
            _same_as_source(
                "wearables/welltory",
                f"{_GITHUB}/Welltory/hrv-covid19/24edcdac43592e296c24853c2614dce752b07865/data",
                """
4bd9c285241d849911646b489822c371f6dab4f72bc8aec80e42ae782c86ffb5 47358 blood_pressure.csv
5c46f89225ce80518e4e48e3c28e64db7ed6dec558e8bd25d855a623e5a6bc9b 2121442 hrv_measurements.csv
9c1ff668c794b2189ed0e6d043abefd8c30f774132dfa8cb3500b58a50d3c426 14249 participants.csv
eeac2f18c67f3d254feddb240b05aae391f664c66769b5a6ee4d7edab0a286e0 44514 sleep.csv
edb315eeb196f74c44dc776c30f0a985509530b8baffb9f725e07a689b6f2b5d 152392 surveys.csv
06db5c7c2d1b2a9ee8f99ff560fd7a0f3002e3abc35916963547aff8f27b1db9 320002 wearables.csv
""",
            ),
        ),
        ReferenceDataset(
            "stanford_covid",
            "One participant's Fitbit heart rate (5-second) and minute steps, March 2020 on",
            "Mishra et al., Nature Biomedical Engineering 4:1208 (2020); AnomalyDetect repository",
            "MIT",
            _same_as_source(
                "wearables/stanford_covid",
                f"{_GITHUB}/gireeshkbogu/AnomalyDetect/d0cb42a26b59c7d4938ec7e7104531d300773944"
                "/data",
                """
9afb4c2ddf8ed8fdff6f9f688526cbdafacefe4a06bb4c2a0854476c0e11f895 2340424 A0NVTRV_hr.csv.zip
5c06a77b952b65354b256e6a917db205e5f95a01bc844d3c2e1d9b5b6d3683aa 518553 A0NVTRV_steps.csv.zip
""",
            ),
        ),
        ReferenceDataset(
            "golub",
            "Golub leukaemia expression, ALL vs AML: 38 training and 34 independent patients",
            "Golub et al., Science 286:531 (1999), Broad Institute data; GitHub mirrors",
            "public research data (Broad Institute)",
            _same_as_source(
                "genomics",
                f"{_GITHUB}/jhcui18/Leukemia_classifier/eda54b1c711d96f58428884ca4f13d54f46f5184",
                """
7b3a9868d371ea1b5182f7c0242c920a52ddea5cb232fd387cfc2563f3dadce0 1863440 data_set_ALL_AML_independent.csv
d82f928c573de78e56b0a6c42393a14d08148927060fac4178b40023ff0b0752 2046726 data_set_ALL_AML_train.csv
""",  # noqa: E501
            )
            + _same_as_source(
                "genomics",
                f"{_GITHUB}/ChocolateVa/gen-expression2/9965081647bbe16d3ca7433f2325069260c6a666",
                """
af291eced4116e257af0b73043e83b55d9b42f0d815440a4c5bc72424d2f44e1 511 actual.csv
""",
            ),
        ),
        ReferenceDataset(
            "physionet2012",
            "PhysioNet/CinC Challenge 2012 set A: 4,000 ICU stays, first 48 h, in-hospital death",
            "Silva et al., Computing in Cardiology 39:245 (2012); PhysioNet challenge-2012 1.0.0",
            "Open Data Commons Attribution v1.0",
            # PhysioNet publishes no checksums for these files: a download is accepted only
            # when it matches the copy medpredict was developed and tested on.
            _same_as_source(
                "ehr/physionet2012",
                "https://physionet.org/files/challenge-2012/1.0.0",
                """
a6814b707e5e2c5574ffde83b10a5a2fd81a70406f25e473313e53f91c8dad7c 6621783 set-a.tar.gz
2613ea60ccda29f87571a7d6b09ad130858a8ccd66325bd073365925026883c2 79219 Outcomes-a.txt
""",
            ),
        ),
        ReferenceDataset(
            "deepsurv",
            "DeepSurv's published train/test splits: SUPPORT, METABRIC, Rotterdam -> GBSG, WHAS",
            "Katzman et al., BMC Medical Research Methodology 18:24 (2018); DeepSurv repository",
            "MIT",
            tuple(
                file
                for folder, line in (
                    ("support", "e398f49930e4efc4ecd675a72ac547f0d1ae25ccf13f6a1024cded12ea88a83e"
                     " 574112 support_train_test.h5"),
                    ("metabric", "e959131973c906c7e8b1e662c81160914768156a6da145a9bfed9b9ee8bf3e72"
                     " 90016 metabric_IHC4_clinical_train_test.h5"),
                    ("gbsg", "bd455f4395322a8b23040c15cedbef00ad51a447d02c95f1f1d686a6b196484b"
                     " 86592 gbsg_cancer_train_test.h5"),
                    ("whas", "2ed86f073fdbe34be10f7e485eeaf67b61004521390c46b9a18aa9b82d5e8f9c"
                     " 58656 whas_train_test.h5"),
                )
                for file in _same_as_source(
                    "survival",
                    f"{_GITHUB}/jaredleekatzman/DeepSurv/f0803f57bff9395f2bfbb99da2f1031adcf01331"
                    f"/experiments/data/{folder}",
                    line,
                )
            ),
        ),
        ReferenceDataset(
            "flusight",
            "CDC FluSight weekly confirmed influenza hospital admissions, 50 states, DC, PR, "
            "US; 2022-02 to 2026-06",
            "CDC FluSight forecast hub (cdcepi/FluSight-forecast-hub), target-data; NHSN Weekly "
            "Hospital Respiratory Data",
            "MIT (hub); NHSN data are US public-domain",
            # The hub rewrites this file every week with revised counts and publishes no
            # checksums: a download is accepted only when it matches the copy (as of mid-2026)
            # that medpredict was developed and benchmarked on; a mirror can serve that copy.
            (
                ReferenceFile(
                    "forecasting/flusight_target_hospital_admissions.csv",
                    f"{_GITHUB}/cdcepi/FluSight-forecast-hub/main/target-data/"
                    "target-hospital-admissions.csv",
                    _FLUSIGHT,
                    _FLUSIGHT,
                ),
            ),
        ),
        ReferenceDataset(
            "medical_abstracts",
            "Medical Abstracts corpus: 2,888 abstracts in 5 condition classes (test split)",
            "Schopf et al. 2023; sebischair/Medical-Abstracts-TC-Corpus (medical_tc_test.csv)",
            "CC BY-SA 3.0",
            (
                ReferenceFile(
                    "text/medical_abstracts_test.csv",
                    f"{_GITHUB}/sebischair/Medical-Abstracts-TC-Corpus"
                    "/547596568102fe3ec008d94a486fd7f55876c433/medical_tc_test.csv",
                    _ABSTRACTS,
                    _ABSTRACTS,
                ),
            ),
        ),
    ]
}


def reference_dataset(name: str) -> ReferenceDataset:
    """The reference dataset ``name``; a :class:`DataError` lists the known names."""
    if name not in REFERENCE_DATASETS:
        raise DataError(
            f"unknown reference dataset {name!r}; expected one of: {', '.join(REFERENCE_DATASETS)}"
        )
    return REFERENCE_DATASETS[name]


def dataset_holding(relative: str) -> ReferenceDataset | None:
    """The reference dataset with the file or folder ``relative``, if any."""
    prefix = relative.rstrip("/") + "/"
    for dataset in REFERENCE_DATASETS.values():
        if any(f.relative == relative or f.relative.startswith(prefix) for f in dataset.files):
            return dataset
    return None
