"""One tidy, embedded store of every person's wearable readings (DuckDB).

Tables
------
``readings``
    Intraday readings: ``person``, ``signal``, ``time_utc`` (naive UTC timestamp),
    ``utc_offset_min`` (the reading's own offset, so local time survives travel and
    clock changes) and ``value``.
``daily``
    One value per person, signal and local ``day`` (device daily summaries).
``quarantine``
    Every rejected row: raw ``time`` and ``value`` as text, the ``reason``, ``source``
    and source ``row``, and when it was ingested. Nothing is dropped silently.
``ingests``
    One line per :meth:`WearableStore.append` call with its counts.

Appending validates the batch (:func:`~medpredict.wearables.quality.validate_readings`)
and also quarantines readings already in the store (a re-sent file does not double
count). Late, out-of-order readings are accepted and counted.

Examples
--------
>>> import pandas as pd
>>> store = WearableStore()
>>> batch = pd.DataFrame({"person": "p1", "signal": "heart_rate",
...                       "time": ["2020-03-10 00:00:00", "2020-03-10 00:00:05"],
...                       "value": [61, 0]})
>>> summary = store.append(batch, source="demo.csv")
>>> summary.n_stored, summary.n_quarantined
(1, 1)
>>> store.append(batch.iloc[:1], source="again.csv").reasons
{'already stored (same person, signal, time and value)': 1}
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from medpredict.wearables.catalogue import CONTINUOUS, DAILY
from medpredict.wearables.quality import validate_readings

_SCHEMA = """
CREATE TABLE IF NOT EXISTS readings (
    person VARCHAR, signal VARCHAR, time_utc TIMESTAMP, utc_offset_min SMALLINT, value DOUBLE);
CREATE TABLE IF NOT EXISTS daily (person VARCHAR, signal VARCHAR, day DATE, value DOUBLE);
CREATE TABLE IF NOT EXISTS quarantine (
    person VARCHAR, signal VARCHAR, time VARCHAR, value VARCHAR, reason VARCHAR,
    source VARCHAR, row BIGINT, ingested_at TIMESTAMP);
CREATE TABLE IF NOT EXISTS ingests (
    source VARCHAR, ingested_at TIMESTAMP, n_input BIGINT, n_stored BIGINT,
    n_quarantined BIGINT, n_reordered BIGINT, n_late BIGINT);
"""


@dataclass
class IngestSummary:
    """What one append did: rows in, stored, quarantined (by reason), reordered, late.

    ``gaps`` counts breaks longer than ``gap_minutes`` in the batch's continuous streams
    (heart rate, steps) and ``longest_gap_hours`` is the longest; ``utc_offsets_min``
    lists the distinct UTC offsets seen (more than one means mixed time zones).
    """

    source: str
    n_input: int
    n_stored: int
    n_quarantined: int
    reasons: dict[str, int] = field(default_factory=dict)
    n_reordered: int = 0
    n_late: int = 0
    gaps: int = 0
    longest_gap_hours: float = 0.0
    utc_offsets_min: list[int] = field(default_factory=list)

    def to_dict(self) -> dict:
        """Plain-JSON form."""
        return asdict(self)


class WearableStore:
    """Embedded per-person store with an append API.

    Parameters
    ----------
    path : DuckDB database file; ``None`` keeps everything in memory.
    threads : DuckDB worker threads (``None``: DuckDB's default).
    gap_minutes : an intraday break longer than this is reported as a gap.
    """

    def __init__(
        self, path: str | Path | None = None, threads: int | None = None, gap_minutes: int = 60
    ) -> None:
        self.path = None if path is None else Path(path)
        self.threads = threads
        self.gap_minutes = gap_minutes
        config = {"threads": threads} if threads else {}
        self._con = duckdb.connect(str(self.path) if self.path else ":memory:", config=config)
        self._con.execute(_SCHEMA)

    def close(self) -> None:
        """Close the database (a file-backed store keeps its contents)."""
        self._con.close()

    def __enter__(self) -> WearableStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def append(
        self, frame: pd.DataFrame, timezone: str = "UTC", source: str = "readings"
    ) -> IngestSummary:
        """Validate and store long-form readings (``person, signal, time, value``).

        Parameters
        ----------
        frame : readings; an optional ``row`` column gives source row numbers.
        timezone : IANA zone for timestamps without a UTC offset.
        source : label stored with quarantined rows and in the ingest log.

        Returns
        -------
        IngestSummary
        """
        result = validate_readings(frame, timezone=timezone, source=source)
        accepted = result.accepted
        is_daily = accepted["signal"].isin(DAILY).to_numpy()
        intraday = accepted[~is_daily]
        daily = accepted[is_daily].assign(
            day=lambda d: (
                d["time_utc"] + pd.to_timedelta(d["utc_offset_min"].astype(int), unit="min")
            ).dt.normalize()
        )[["person", "signal", "day", "value"]]

        stored_dups = self._already_stored(intraday, daily)
        if stored_dups is not None:
            keep_i, keep_d, extra = stored_dups
            intraday, daily = intraday[keep_i], daily[keep_d]
            quarantine = pd.concat([result.quarantine, extra], ignore_index=True)
        else:
            quarantine = result.quarantine
        n_late = self._count_late(intraday)
        gaps, longest = _gaps(intraday[intraday["signal"].isin(CONTINUOUS)], self.gap_minutes)

        con = self._con
        con.register("batch_i", intraday)
        con.execute(
            "INSERT INTO readings SELECT person::VARCHAR, signal::VARCHAR, time_utc, "
            "utc_offset_min, value FROM batch_i"
        )
        con.unregister("batch_i")
        con.register("batch_d", daily)
        con.execute(
            "INSERT INTO daily SELECT person::VARCHAR, signal::VARCHAR, day::DATE, value "
            "FROM batch_d"
        )
        con.unregister("batch_d")
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        con.register("batch_q", quarantine.assign(ingested_at=now))
        con.execute("INSERT INTO quarantine SELECT * FROM batch_q")
        con.unregister("batch_q")
        summary = IngestSummary(
            source=source,
            n_input=result.n_input,
            n_stored=len(intraday) + len(daily),
            n_quarantined=len(quarantine),
            reasons=quarantine["reason"].value_counts().to_dict(),
            n_reordered=result.n_reordered,
            n_late=n_late,
            gaps=gaps,
            longest_gap_hours=longest,
            utc_offsets_min=result.offsets_seen,
        )
        con.execute(
            "INSERT INTO ingests VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                source,
                now,
                summary.n_input,
                summary.n_stored,
                summary.n_quarantined,
                summary.n_reordered,
                summary.n_late,
            ],
        )
        return summary

    def _already_stored(
        self, intraday: pd.DataFrame, daily: pd.DataFrame
    ) -> tuple[np.ndarray, np.ndarray, pd.DataFrame] | None:
        """Masks of batch rows not yet stored, and quarantine rows for those that are."""
        con = self._con
        has_i = len(intraday) and con.execute("SELECT count(*) FROM readings").fetchall()[0][0]
        has_d = len(daily) and con.execute("SELECT count(*) FROM daily").fetchall()[0][0]
        if not (has_i or has_d):
            return None
        keep_i = np.ones(len(intraday), dtype=bool)
        keep_d = np.ones(len(daily), dtype=bool)
        extra = []
        for table, batch, keep, when in (
            ("readings", intraday, keep_i, "time_utc"),
            ("daily", daily, keep_d, "day"),
        ):
            if batch.empty:
                continue
            con.register("probe", batch.assign(pos=np.arange(len(batch))))
            hits = con.execute(
                f"SELECT p.pos, r.value = p.value AS same FROM probe p JOIN {table} r "
                f"ON r.person = p.person::VARCHAR AND r.signal = p.signal::VARCHAR "
                f"AND r.{when} = p.{when}"
            ).fetchnumpy()
            con.unregister("probe")
            if hits["pos"].size == 0:
                continue
            pos = hits["pos"].astype(int)
            keep[pos] = False
            found = batch.iloc[pos]
            extra.append(
                pd.DataFrame(
                    {
                        "person": found["person"].astype(str).to_numpy(),
                        "signal": found["signal"].astype(str).to_numpy(),
                        "time": found[when].astype(str).to_numpy(),
                        "value": found["value"].astype(str).to_numpy(),
                        "reason": np.where(
                            hits["same"],
                            "already stored (same person, signal, time and value)",
                            "conflicts with a stored reading (same person, signal and time)",
                        ),
                        "source": "",
                        "row": -1,
                    }
                )
            )
        if not extra:
            return keep_i, keep_d, pd.DataFrame(columns=["reason"])
        return keep_i, keep_d, pd.concat(extra, ignore_index=True)

    def _count_late(self, intraday: pd.DataFrame) -> int:
        """Batch readings older than the newest stored reading of the same stream."""
        if intraday.empty:
            return 0
        latest = self._con.execute(
            "SELECT person, signal, max(time_utc) AS latest FROM readings GROUP BY ALL"
        ).df()
        if latest.empty:
            return 0
        late = 0
        times = intraday["time_utc"].to_numpy()
        for person, signal, newest in latest.itertuples(index=False):
            stream = ((intraday["person"] == person) & (intraday["signal"] == signal)).to_numpy()
            late += int(np.sum(times[stream] < np.datetime64(newest)))
        return late

    def persons(self) -> list[str]:
        """Every person with a stored reading or daily value, sorted."""
        rows = self._con.execute(
            "SELECT DISTINCT person FROM (SELECT person FROM readings UNION ALL "
            "SELECT person FROM daily) ORDER BY person"
        ).fetchall()
        return [r[0] for r in rows]

    def readings(
        self, persons: list[str] | None = None, signals: list[str] | None = None
    ) -> pd.DataFrame:
        """Intraday readings with ``local_time``, sorted by person, signal and time."""
        where, params = _filters(persons, signals)
        return self._con.execute(
            "SELECT person, signal, time_utc, utc_offset_min, value, "
            "time_utc + to_minutes(utc_offset_min::INTEGER) AS local_time FROM readings"
            f"{where} ORDER BY person, signal, time_utc",
            params,
        ).df()

    def stream(self, person: str, signal: str) -> tuple[np.ndarray, np.ndarray]:
        """One person's readings of one intraday signal: local times and values, in order."""
        out = self._con.execute(
            "SELECT time_utc + to_minutes(utc_offset_min::INTEGER) AS local_time, value "
            "FROM readings WHERE person = ? AND signal = ? ORDER BY time_utc",
            [person, signal],
        ).fetchnumpy()
        return np.asarray(out["local_time"]), np.asarray(out["value"], dtype=float)

    def query(self, sql: str, params: list | None = None) -> pd.DataFrame:
        """Run SQL on the tables (readings, daily, quarantine, ingests) into a DataFrame."""
        return self._con.execute(sql, params or []).df()

    def daily(
        self, persons: list[str] | None = None, signals: list[str] | None = None
    ) -> pd.DataFrame:
        """Daily values (``person, signal, day, value``), sorted."""
        where, params = _filters(persons, signals)
        frame = self._con.execute(
            f"SELECT person, signal, day, value FROM daily{where} ORDER BY person, signal, day",
            params,
        ).df()
        frame["day"] = pd.to_datetime(frame["day"])
        return frame

    def quarantine(self, persons: list[str] | None = None) -> pd.DataFrame:
        """Quarantined rows with their reasons, in ingestion order."""
        where, params = _filters(persons, None)
        return self._con.execute(f"SELECT * FROM quarantine{where}", params).df()

    def ingests(self) -> pd.DataFrame:
        """The ingest log, one row per append."""
        return self._con.execute("SELECT * FROM ingests ORDER BY ingested_at").df()

    def gaps(self, min_minutes: int | None = None) -> pd.DataFrame:
        """Breaks longer than ``min_minutes`` in every stored heart-rate and steps stream."""
        limit = self.gap_minutes if min_minutes is None else min_minutes
        return self._con.execute(
            "SELECT person, signal, previous AS gap_start, time_utc AS gap_end, "
            "date_diff('second', previous, time_utc) / 3600.0 AS hours FROM ("
            " SELECT person, signal, time_utc, lag(time_utc) OVER "
            " (PARTITION BY person, signal ORDER BY time_utc) AS previous FROM readings"
            f" WHERE signal IN {CONTINUOUS}) "
            "WHERE date_diff('second', previous, time_utc) > ? ORDER BY person, signal, gap_start",
            [limit * 60],
        ).df()

    def to_parquet(self, folder: str | Path) -> list[Path]:
        """Write every table to ``folder/<table>.parquet`` and return the paths."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        out = []
        for table in ("readings", "daily", "quarantine", "ingests"):
            path = folder / f"{table}.parquet"
            self._con.execute(f"COPY {table} TO '{path.as_posix()}' (FORMAT parquet)")
            out.append(path)
        return out


def _filters(persons: list[str] | None, signals: list[str] | None) -> tuple[str, list]:
    clauses, params = [], []
    if persons is not None:
        clauses.append("person IN (SELECT unnest(?))")
        params.append(list(persons))
    if signals is not None:
        clauses.append("signal IN (SELECT unnest(?))")
        params.append(list(signals))
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def _gaps(intraday: pd.DataFrame, gap_minutes: int) -> tuple[int, float]:
    """Number of breaks longer than ``gap_minutes`` and the longest, in hours."""
    if len(intraday) < 2:
        return 0, 0.0
    times = intraday["time_utc"].to_numpy().astype("datetime64[s]").astype(np.int64)
    stream = intraday.groupby(["person", "signal"], observed=True, sort=False).ngroup().to_numpy()
    same = stream[1:] == stream[:-1]
    step = np.diff(times)[same]
    long = step > gap_minutes * 60
    return int(long.sum()), float(step.max() / 3600) if step.size else 0.0
