"""Append-only, hash-chained audit log of every prediction (SQLite or PostgreSQL).

Each row records who asked, when, through which endpoint, which exact model
(name, version, sha256), a hash of the input (never the input itself, never a
patient identifier) and the output. Row ``n`` stores the hash of row ``n - 1``
and its own hash over all its fields, so editing, inserting or deleting a row
anywhere but at the end breaks the chain, which :func:`verify_chain` reports.
Removing rows at the end is caught by checking a previously recorded head
(``anchor``). The database also refuses ``UPDATE`` and ``DELETE`` on the table
through triggers.

Examples
--------
>>> log = AuditLog("sqlite://")
>>> row = log.append("dr-smith", "predict", {"name": "pima", "version": "1",
...                  "sha256": "ab"}, input_hash({"glu": 148}), {"risk": 0.4})
>>> verify_chain(log.engine).ok
True
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    DDL,
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    func,
    inspect,
    make_url,
    select,
)
from sqlalchemy.pool import StaticPool

GENESIS = "0" * 64
metadata = MetaData()
audit_table = Table(
    "audit_log",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("ts", String(40), nullable=False),
    Column("principal", String(200), nullable=False),
    Column("action", String(40), nullable=False),
    Column("model_name", String(200), nullable=False),
    Column("model_version", String(100), nullable=False),
    Column("model_sha256", String(64), nullable=False),
    Column("input_sha256", String(64), nullable=False),
    Column("output", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)
_FIELDS = [c.name for c in audit_table.columns if c.name != "hash"]
_INSERT = audit_table.insert()
_LAST = select(audit_table.c.seq, audit_table.c.hash).order_by(audit_table.c.seq.desc()).limit(1)

event.listen(
    audit_table,
    "after_create",
    DDL(
        "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log "
        "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"
    ).execute_if(dialect="sqlite"),
)
event.listen(
    audit_table,
    "after_create",
    DDL(
        "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log "
        "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"
    ).execute_if(dialect="sqlite"),
)
event.listen(
    audit_table,
    "after_create",
    DDL(
        "CREATE FUNCTION audit_log_refuse() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'audit_log is append-only'; END $$; "
        "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE "
        "ON audit_log FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse()"
    ).execute_if(dialect="postgresql"),
)


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: equal values give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str, allow_nan=False)


def input_hash(payload: Any, key: bytes | None = None) -> str:
    """SHA-256 (or HMAC-SHA256 with ``key``) of the canonical JSON of ``payload``."""
    data = canonical_json(payload).encode("utf-8")
    if key is not None:
        return hmac.new(key, data, hashlib.sha256).hexdigest()
    return hashlib.sha256(data).hexdigest()


def _row_hash(row: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json([row[f] for f in _FIELDS]).encode("utf-8")).hexdigest()


def make_engine(url: str, writer: bool = True) -> Engine:
    """Create an engine; a SQLite writer gets WAL, full sync and write-locking transactions."""
    if not url.startswith("sqlite") or not writer:
        return create_engine(url, pool_pre_ping=True)
    in_memory = url in ("sqlite://", "sqlite:///:memory:")
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False},
        poolclass=StaticPool if in_memory else None,
    )

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if not in_memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


@dataclass(frozen=True)
class AuditEntry:
    """What one answered request contributes to the log."""

    principal: str
    action: str
    model: dict[str, str]
    input_sha256: str
    output: Any


class AuditLog:
    """Writer of the audit chain.

    Parameters
    ----------
    url : SQLAlchemy URL, e.g. ``sqlite:///audit.db`` or
        ``postgresql+psycopg://user@host/db`` (credentials from the environment).
    """

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        metadata.create_all(self.engine)
        self._lock = threading.Lock()

    def append(
        self,
        principal: str,
        action: str,
        model: dict[str, str],
        input_sha256: str,
        output: Any,
    ) -> dict[str, Any]:
        """Add one row, chained to the last; return it (with ``seq`` and ``hash``)."""
        return self.append_many([AuditEntry(principal, action, model, input_sha256, output)])[0]

    def append_many(self, entries: list[AuditEntry]) -> list[dict[str, Any]]:
        """Add rows in one transaction (one commit), chained in order; return them."""
        with self._lock, self.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.exec_driver_sql("LOCK TABLE audit_log IN SHARE ROW EXCLUSIVE MODE")
            last = connection.execute(_LAST).first()
            seq, prev = (0, GENESIS) if last is None else (last.seq, last.hash)
            rows = []
            for entry in entries:
                seq += 1
                row = {
                    "seq": seq,
                    "ts": datetime.now(UTC).isoformat(timespec="microseconds"),
                    "principal": entry.principal,
                    "action": entry.action,
                    "model_name": entry.model["name"],
                    "model_version": entry.model["version"],
                    "model_sha256": entry.model["sha256"],
                    "input_sha256": entry.input_sha256,
                    "output": canonical_json(entry.output),
                    "prev_hash": prev,
                }
                row["hash"] = prev = _row_hash(row)
                rows.append(row)
            connection.execute(_INSERT, rows)
        return rows

    def count(self) -> int:
        """Number of rows in the log."""
        with self.engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(audit_table)).scalar())


@dataclass
class ChainReport:
    """Outcome of :func:`verify_chain`: ``ok`` only if ``problems`` is empty."""

    rows: int
    head_seq: int
    head_hash: str
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether the chain is intact."""
        return not self.problems


def verify_chain(
    source: str | Engine, anchor: tuple[int, str] | None = None, max_problems: int = 20
) -> ChainReport:
    """Recompute the hash chain and report every break.

    Parameters
    ----------
    source : SQLAlchemy URL or engine of the audit database.
    anchor : ``(seq, hash)`` of a head recorded earlier; checks that this row is
        still there unchanged, which catches rows removed from the end.
    max_problems : stop listing after this many problems.
    """
    if isinstance(source, str):
        database = make_url(source).database
        on_disk = source.startswith("sqlite") and database not in (None, "", ":memory:")
        if on_disk and not Path(database).is_file():
            raise ValueError(f"no audit database at {database}")
        engine = make_engine(source, writer=False)
    else:
        engine = source
    if not inspect(engine).has_table(audit_table.name):
        raise ValueError(f"{engine.url.render_as_string()} holds no {audit_table.name} table")
    report = ChainReport(rows=0, head_seq=0, head_hash=GENESIS)
    expected_prev, expected_seq = GENESIS, 1
    anchor_seen = anchor is None
    with engine.connect() as connection:
        rows = connection.execute(select(audit_table).order_by(audit_table.c.seq))
        for row in rows.mappings():
            report.rows += 1
            seq = row["seq"]
            if seq != expected_seq:
                report.problems.append(f"row {seq}: expected row {expected_seq} (rows missing)")
            if row["prev_hash"] != expected_prev:
                report.problems.append(f"row {seq}: does not chain to the row before it")
            if _row_hash(dict(row)) != row["hash"]:
                report.problems.append(f"row {seq}: contents changed since it was written")
            if anchor is not None and seq == anchor[0]:
                anchor_seen = True
                if row["hash"] != anchor[1]:
                    report.problems.append(f"row {seq}: hash differs from the recorded anchor")
            expected_prev, expected_seq = row["hash"], seq + 1
            report.head_seq, report.head_hash = seq, row["hash"]
            if len(report.problems) >= max_problems:
                report.problems.append("… stopped listing problems")
                return report
    if not anchor_seen:
        report.problems.append(f"row {anchor[0]} of the recorded anchor is missing")
    return report
