"""Append-only, hash-chained audit log of every prediction (SQLite or PostgreSQL).

Each row records who asked, when, through which endpoint, which exact model
(name, version, sha256), a hash of the input (never the input itself, never a
patient identifier) and the output. Row ``n`` stores the hash of row ``n - 1``
and its own hash over all its fields, so editing, inserting or deleting a row
anywhere but at the end breaks the chain, which :func:`verify_chain` reports.
Removing rows at the end is caught by checking a previously recorded head
(``anchor``). The database also refuses ``UPDATE`` and ``DELETE`` on the table
through triggers, and :func:`verify_chain` reports triggers that are missing.

With a chain key (``MEDPREDICT_AUDIT_CHAIN_KEY``, kept away from the database)
the row hash is an HMAC-SHA256, so someone who can write to the database but
lacks the key cannot rewrite rows and recompute the hashes, nor append a row
that verifies. Without a key the row hash is a plain SHA-256, which anyone can
recompute.

Examples
--------
>>> log = AuditLog("sqlite://", chain_key="k" * 32)
>>> row = log.append("dr-smith", "predict", {"name": "pima", "version": "1",
...                  "sha256": "ab"}, input_hash({"glu": 148}), {"risk": 0.4})
>>> report = verify_chain(log.engine, chain_key="k" * 32)
>>> report.ok, report.keyed
(True, True)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from sqlalchemy import (
    DDL,
    Column,
    Connection,
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
    text,
)
from sqlalchemy.exc import DatabaseError, OperationalError
from sqlalchemy.pool import StaticPool

from medpredict.serve.config import ENV_PREFIX

logger = logging.getLogger("medpredict.serve.audit")
GENESIS = "0" * 64
CHAIN_KEY_ENV = ENV_PREFIX + "AUDIT_CHAIN_KEY"
MIN_CHAIN_KEY_BYTES = 32
SQLITE_TRIGGERS = ("audit_log_no_update", "audit_log_no_delete")
POSTGRES_TRIGGER = "audit_log_append_only"
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
_LAST = select(audit_table).order_by(audit_table.c.seq.desc()).limit(1)

event.listen(
    audit_table,
    "after_create",
    DDL(
        f"CREATE TRIGGER {SQLITE_TRIGGERS[0]} BEFORE UPDATE ON audit_log "
        "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"
    ).execute_if(dialect="sqlite"),
)
event.listen(
    audit_table,
    "after_create",
    DDL(
        f"CREATE TRIGGER {SQLITE_TRIGGERS[1]} BEFORE DELETE ON audit_log "
        "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"
    ).execute_if(dialect="sqlite"),
)
event.listen(
    audit_table,
    "after_create",
    DDL(
        "CREATE FUNCTION audit_log_refuse() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'audit_log is append-only'; END $$; "
        f"CREATE TRIGGER {POSTGRES_TRIGGER} BEFORE UPDATE OR DELETE OR TRUNCATE "
        "ON audit_log FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse()"
    ).execute_if(dialect="postgresql"),
)


class AuditUnavailableError(RuntimeError):
    """The audit store cannot be written now (locked or unreachable); retry later.

    A prediction whose audit row could not be written is never returned.
    """

    retry_after = 5


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


def resolve_chain_key(value: str | bytes | SecretStr | None = None) -> bytes | None:
    """The chain key as bytes: ``value``, else ``MEDPREDICT_AUDIT_CHAIN_KEY``, else ``None``.

    Raises
    ------
    ValueError
        If the key is shorter than 32 bytes.
    """
    if value is None:
        value = os.environ.get(CHAIN_KEY_ENV)
        if value is None:
            return None
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    key = value.encode("utf-8") if isinstance(value, str) else value
    if len(key) < MIN_CHAIN_KEY_BYTES:
        raise ValueError(
            f"the audit chain key ({CHAIN_KEY_ENV}) must be at least {MIN_CHAIN_KEY_BYTES} "
            f"bytes, got {len(key)}"
        )
    return key


def _row_hash(row: dict[str, Any], key: bytes | None) -> str:
    data = canonical_json([row[f] for f in _FIELDS]).encode("utf-8")
    if key is not None:
        return hmac.new(key, data, hashlib.sha256).hexdigest()
    return hashlib.sha256(data).hexdigest()


def _sqlite_path(url: str) -> Path | None:
    """The file of an on-disk SQLite URL, else ``None``."""
    database = make_url(url).database
    if not url.startswith("sqlite") or database in (None, "", ":memory:"):
        return None
    return Path(database)


def _create_private(path: Path) -> None:
    """Create the SQLite file owner-only (0600), or tighten an existing one and its companions.

    SQLite gives its -wal, -shm and -journal files the mode of the database file.
    """
    try:
        descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        for companion in (path, *(Path(f"{path}{s}") for s in ("-wal", "-shm", "-journal"))):
            if companion.is_file() and companion.stat().st_mode & 0o077:
                try:
                    companion.chmod(0o600)
                except PermissionError:
                    logger.warning("%s is readable by other users and cannot be made "
                                   "owner-only", companion)
        return
    except OSError as error:
        raise ValueError(f"cannot create the audit database {path}: {error.strerror}") from None
    os.close(descriptor)


def make_engine(url: str, writer: bool = True, lock_timeout: float = 2.0) -> Engine:
    """Create an engine; a SQLite writer gets WAL, full sync and write-locking transactions.

    Parameters
    ----------
    url : SQLAlchemy URL of the audit database.
    writer : whether the engine appends rows (a new SQLite file is created 0600).
    lock_timeout : seconds a writer waits for another process's lock before giving up.
    """
    if not url.startswith("sqlite") or not writer:
        return create_engine(url, pool_pre_ping=True)
    path = _sqlite_path(url)
    if path is not None:
        _create_private(path)
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False},
        poolclass=StaticPool if path is None else None,
    )

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if path is not None:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(lock_timeout * 1000)}")
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
    chain_key : key of the HMAC-SHA256 row hashes (at least 32 bytes); default
        ``MEDPREDICT_AUDIT_CHAIN_KEY``, and plain SHA-256 when that is unset too.
    lock_timeout : seconds to wait for a lock held by another process before
        :class:`AuditUnavailableError` is raised.

    Raises
    ------
    ValueError
        If the last row of an existing log does not verify with the key given (or,
        without a key, as plain SHA-256): appending would mix keyed and unkeyed rows
        or chain to a wrong key.
    """

    def __init__(
        self,
        url: str,
        chain_key: str | bytes | SecretStr | None = None,
        lock_timeout: float = 2.0,
    ) -> None:
        self._key = resolve_chain_key(chain_key)
        self._lock_timeout = lock_timeout
        self.engine = make_engine(url, lock_timeout=lock_timeout)
        metadata.create_all(self.engine)
        self._lock = threading.Lock()
        with self.engine.connect() as connection:
            last = connection.execute(_LAST).mappings().first()
        if last is not None:
            self._check_continues(dict(last))

    @property
    def keyed(self) -> bool:
        """Whether rows are hashed with the chain key."""
        return self._key is not None

    def _check_continues(self, last: dict[str, Any]) -> None:
        if _row_hash(last, self._key) == last["hash"]:
            return
        where = f"row {last['seq']} (the last) of the audit log"
        if self._key is None:
            raise ValueError(f"{where} is not an unkeyed SHA-256 hash: the log is keyed (set "
                             f"{CHAIN_KEY_ENV}) or was tampered with")
        if _row_hash(last, None) == last["hash"]:
            raise ValueError(f"{where} was written without a chain key; a keyed chain needs a "
                             "new audit database (keep this one for its history)")
        raise ValueError(f"{where} does not verify with {CHAIN_KEY_ENV}: wrong key, or the "
                         "log was tampered with")

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
        """Add rows in one transaction (one commit), chained in order; return them.

        Raises
        ------
        AuditUnavailableError
            If the database is locked by another process or cannot be reached.
        """
        try:
            with self._lock, self.engine.begin() as connection:
                rows = self._chain(connection, entries)
                connection.execute(_INSERT, rows)
        except OperationalError as error:
            reason = str(error.orig).splitlines()[0] if error.orig else type(error).__name__
            raise AuditUnavailableError(f"audit log cannot be written: {reason}") from error
        return rows

    def _chain(self, connection: Connection, entries: list[AuditEntry]) -> list[dict[str, Any]]:
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(f"SET LOCAL lock_timeout = {int(self._lock_timeout * 1000)}")
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
            row["hash"] = prev = _row_hash(row, self._key)
            rows.append(row)
        return rows

    def count(self) -> int:
        """Number of rows in the log."""
        with self.engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(audit_table)).scalar())


@dataclass
class ChainReport:
    """Outcome of :func:`verify_chain`.

    ``problems`` lists breaks of the chain, ``unprotected`` the append-only triggers
    that are missing or disabled; ``ok`` only if both are empty. ``keyed`` says
    whether the row hashes were checked with the chain key.
    """

    rows: int
    head_seq: int
    head_hash: str
    keyed: bool
    problems: list[str] = field(default_factory=list)
    unprotected: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        """Whether the chain itself is unbroken."""
        return not self.problems

    @property
    def ok(self) -> bool:
        """Whether the chain is intact and the database still refuses edits."""
        return not self.problems and not self.unprotected


def missing_triggers(connection: Connection) -> list[str]:
    """The append-only triggers of ``audit_log`` that are missing or disabled."""
    if connection.dialect.name == "sqlite":
        present = set(connection.execute(text(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_log'"
        )).scalars())
        return [f"trigger {name} is missing" for name in SQLITE_TRIGGERS if name not in present]
    if connection.dialect.name == "postgresql":
        state = connection.execute(text(
            "SELECT tgenabled FROM pg_trigger "
            "WHERE tgrelid = 'audit_log'::regclass AND tgname = :name"
        ), {"name": POSTGRES_TRIGGER}).scalar()
        if state is None:
            return [f"trigger {POSTGRES_TRIGGER} is missing"]
        return [f"trigger {POSTGRES_TRIGGER} is disabled"] if state == "D" else []
    return [f"append-only triggers are not known for {connection.dialect.name}"]


def _open_for_verify(source: str | Engine) -> Engine:
    if not isinstance(source, str):
        return source
    path = _sqlite_path(source)
    if path is not None and not path.is_file():
        raise ValueError(f"no audit database at {path}")
    return make_engine(source, writer=False)


def verify_chain(
    source: str | Engine,
    anchor: tuple[int, str] | None = None,
    max_problems: int = 20,
    chain_key: str | bytes | SecretStr | None = None,
) -> ChainReport:
    """Recompute the hash chain, report every break and every missing trigger.

    Parameters
    ----------
    source : SQLAlchemy URL or engine of the audit database.
    anchor : ``(seq, hash)`` of a head recorded earlier; checks that this row is
        still there unchanged, which catches rows removed from the end.
    max_problems : stop listing after this many problems.
    chain_key : key of the HMAC-SHA256 row hashes; default
        ``MEDPREDICT_AUDIT_CHAIN_KEY``. With a key every row must carry its HMAC;
        without one the rows are checked as plain SHA-256, which anyone can recompute.

    Raises
    ------
    ValueError
        If the database does not exist, cannot be opened or holds no audit log.
    """
    key = resolve_chain_key(chain_key)
    engine = _open_for_verify(source)
    where = _sqlite_path(engine.url.render_as_string()) or engine.url.render_as_string()
    try:
        with engine.connect() as connection:
            if not inspect(connection).has_table(audit_table.name):
                raise ValueError(f"{where} holds no {audit_table.name} table")
            report = ChainReport(rows=0, head_seq=0, head_hash=GENESIS, keyed=key is not None,
                                 unprotected=missing_triggers(connection))
            rows = connection.execute(select(audit_table).order_by(audit_table.c.seq))
            _check_rows(report, rows.mappings(), key, anchor, max_problems)
    except DatabaseError as error:
        reason = str(error.orig).splitlines()[0] if error.orig else type(error).__name__
        raise ValueError(f"cannot read the audit database {where}: {reason}") from None
    return report


def _check_rows(
    report: ChainReport,
    rows: Any,
    key: bytes | None,
    anchor: tuple[int, str] | None,
    max_problems: int,
) -> None:
    expected_prev, expected_seq = GENESIS, 1
    anchor_seen, any_verified = anchor is None, False
    for row in rows:
        report.rows += 1
        seq, values = row["seq"], dict(row)
        if seq != expected_seq:
            report.problems.append(f"row {seq}: expected row {expected_seq} (rows missing)")
        if row["prev_hash"] != expected_prev:
            report.problems.append(f"row {seq}: does not chain to the row before it")
        if _row_hash(values, key) == row["hash"]:
            any_verified = True
        else:
            unkeyed = key is not None and _row_hash(values, None) == row["hash"]
            report.problems.append(
                f"row {seq}: hashed without the chain key (forged or written unkeyed)"
                if unkeyed else f"row {seq}: contents changed since it was written"
            )
        if anchor is not None and seq == anchor[0]:
            anchor_seen = True
            if row["hash"] != anchor[1]:
                report.problems.append(f"row {seq}: hash differs from the recorded anchor")
        expected_prev, expected_seq = row["hash"], seq + 1
        report.head_seq, report.head_hash = seq, row["hash"]
        if len(report.problems) >= max_problems:
            report.problems.append("… stopped listing problems")
            break
    else:
        if not anchor_seen:
            report.problems.append(f"row {anchor[0]} of the recorded anchor is missing")
    if report.rows and not any_verified:
        report.problems.append(
            "no row checked verifies with the chain key: wrong key, or the rows were rewritten"
            if key is not None else
            f"no row checked verifies as unkeyed SHA-256: the log is keyed (set "
            f"{CHAIN_KEY_ENV}) or the rows were rewritten"
        )
