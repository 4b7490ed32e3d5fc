"""The audit log: one chained row per answered prediction, tampering detected.

Predictions are made through the running app on real Pima test-set patients;
tampering is done with plain sqlite3, as someone with file access would.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import sqlite3
import threading
from pathlib import Path

import pytest
import typer
from fastapi.testclient import TestClient
from serve_support import keys, pima_model, pima_test_patients
from typer.testing import CliRunner

from medpredict.serve.app import create_app
from medpredict.serve.audit import (
    CHAIN_KEY_ENV,
    AuditLog,
    AuditUnavailableError,
    canonical_json,
    verify_chain,
)
from medpredict.serve.auth import KeyStore
from medpredict.serve.cli import audit_app, keys_app
from medpredict.serve.config import ServeSettings


@pytest.fixture(scope="module")
def audited(tmp_path_factory) -> tuple[Path, list[dict]]:
    """An audit database after a realistic mix of answered and refused requests."""
    path = tmp_path_factory.mktemp("audit") / "audit.db"
    settings = ServeSettings(keys_file=keys()["file"], audit_url=f"sqlite:///{path}")
    client = TestClient(create_app([pima_model()], settings))
    clinician = {"X-API-Key": keys()["clinician"]}
    answered = []
    rows = pima_test_patients(12)
    for i in range(0, 12, 3):
        for purpose in ("care", "what-if"):
            body = {"rows": rows[i:i + 3], "purpose": purpose}
            answer = client.post("/v1/models/pima/predict", json=body, headers=clinician)
            assert answer.status_code == 200
            answered.append({"request": body, "response": answer.json()})
    refused = [
        client.post("/v1/models/pima/predict", json={"rows": [{"glu": 1}]}, headers=clinician),
        client.post("/v1/models/pima/predict", json={"rows": rows[:1]}),
        client.post("/v1/models/pima/predict", json={"rows": rows[:1]},
                    headers={"X-API-Key": keys()["admin"]}),
    ]
    assert [r.status_code for r in refused] == [422, 401, 403]
    return path, answered


def rows_of(path: Path) -> list[dict]:
    with sqlite3.connect(path) as connection:
        connection.row_factory = sqlite3.Row
        return [dict(r) for r in connection.execute("SELECT * FROM audit_log ORDER BY seq")]


def tampered_copy(source: Path, tmp_path: Path, *statements: str) -> Path:
    copy = tmp_path / "copy.db"
    with sqlite3.connect(source) as connection:
        connection.execute("PRAGMA wal_checkpoint(FULL)")
    shutil.copy(source, copy)
    with sqlite3.connect(copy) as connection:
        connection.execute("DROP TRIGGER audit_log_no_update")
        connection.execute("DROP TRIGGER audit_log_no_delete")
        for statement in statements:
            connection.execute(statement)
    return copy


def test_one_row_per_answered_request_and_nothing_else(audited):
    path, answered = audited
    rows = rows_of(path)
    assert len(rows) == len(answered) == 8
    for row, exchange in zip(rows, answered, strict=True):
        response = exchange["response"]
        assert row["seq"] == response["audit_seq"]
        assert row["principal"] == "dr-clinician"
        assert row["action"] == ("predict" if exchange["request"]["purpose"] == "care"
                                 else "predict:what-if")
        assert row["model_sha256"] == response["model"]["sha256"]
        expected_hash = hashlib.sha256(canonical_json(exchange["request"]["rows"]).encode())
        assert row["input_sha256"] == expected_hash.hexdigest()
        output = json.loads(row["output"])
        assert [o["risk"] for o in output] == [p["risk"] for p in response["predictions"]]


def test_audit_log_stores_no_input_values(audited):
    path, _ = audited
    for row in rows_of(path):
        for output in json.loads(row["output"]):
            assert set(output) == {"risk", "band", "probabilities", "prediction",
                                   "conformal_set", "factors"}
            assert all(isinstance(name, str) and isinstance(weight, float)
                       for name, weight in output["factors"])


def test_intact_chain_verifies(audited):
    path, answered = audited
    report = verify_chain(f"sqlite:///{path}")
    assert report.ok, report.problems
    assert report.rows == len(answered)
    assert report.head_hash == rows_of(path)[-1]["hash"]


def test_database_refuses_updates_and_deletes(audited):
    path, _ = audited
    with sqlite3.connect(path) as connection:
        for statement in ("UPDATE audit_log SET output = '[]' WHERE seq = 2",
                          "DELETE FROM audit_log WHERE seq = 8"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                connection.execute(statement)


@pytest.mark.parametrize(
    "statements, problem",
    [
        (["UPDATE audit_log SET output = '[{\"risk\": 0.01}]' WHERE seq = 3"],
         "row 3: contents changed since it was written"),
        (["UPDATE audit_log SET principal = 'someone-else' WHERE seq = 1"],
         "row 1: contents changed since it was written"),
        (["DELETE FROM audit_log WHERE seq = 4"], "row 5: expected row 4 (rows missing)"),
        (["UPDATE audit_log SET seq = seq + 100 WHERE seq = 8"],
         "row 108: expected row 8 (rows missing)"),
    ],
    ids=["edited-output", "edited-caller", "deleted-row", "renumbered-row"],
)
def test_tampering_is_detected(audited, tmp_path, statements, problem):
    path, _ = audited
    report = verify_chain(f"sqlite:///{tampered_copy(path, tmp_path, *statements)}")
    assert not report.ok
    assert problem in report.problems


def test_rehashed_forgery_breaks_the_next_link(audited, tmp_path):
    """An attacker who edits row 3 and recomputes its own hash still breaks row 4."""
    path, _ = audited
    row = rows_of(path)[2]
    row["output"] = '[{"risk": 0.01}]'
    fields = [row[k] for k in ("seq", "ts", "principal", "action", "model_name",
                               "model_version", "model_sha256", "input_sha256", "output",
                               "prev_hash")]
    forged = hashlib.sha256(canonical_json(fields).encode()).hexdigest()
    copy = tampered_copy(path, tmp_path, f"UPDATE audit_log SET output = '{row['output']}', "
                         f"hash = '{forged}' WHERE seq = 3")
    assert verify_chain(f"sqlite:///{copy}").problems == [
        "row 4: does not chain to the row before it"
    ]


def test_removed_tail_is_caught_by_a_recorded_anchor(audited, tmp_path):
    path, _ = audited
    head = verify_chain(f"sqlite:///{path}")
    copy = tampered_copy(path, tmp_path, "DELETE FROM audit_log WHERE seq = 8")
    assert verify_chain(f"sqlite:///{copy}").intact
    report = verify_chain(f"sqlite:///{copy}", anchor=(head.head_seq, head.head_hash))
    assert report.problems == ["row 8 of the recorded anchor is missing"]


def test_concurrent_writers_keep_one_chain(tmp_path):
    """Synthetic outputs: 8 threads append at once; the chain must stay linear."""
    log = AuditLog(f"sqlite:///{tmp_path / 'c.db'}")
    model = {"name": "m", "version": "1", "sha256": "0" * 64}

    def write(worker: int) -> None:
        for i in range(10):
            log.append(f"w{worker}", "predict", model, f"{worker}-{i}", {"risk": i / 10})

    threads = [threading.Thread(target=write, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    report = verify_chain(log.engine)
    assert report.ok and report.rows == log.count() == 80


def test_hmac_input_hashes(tmp_path):
    path = tmp_path / "h.db"
    settings = ServeSettings(keys_file=keys()["file"], audit_url=f"sqlite:///{path}",
                             audit_hmac_key="k" * 32)
    client = TestClient(create_app([pima_model()], settings))
    rows = pima_test_patients(1)
    client.post("/v1/models/pima/predict", json={"rows": rows},
                headers={"X-API-Key": keys()["clinician"]})
    expected = hmac.new(b"k" * 32, canonical_json(rows).encode(), hashlib.sha256).hexdigest()
    assert rows_of(path)[0]["input_sha256"] == expected


# ---- command line -------------------------------------------------------------------------
def cli() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(audit_app, name="audit")
    app.add_typer(keys_app, name="keys")
    return app


def test_audit_verify_command(audited, tmp_path):
    path, _ = audited
    runner = CliRunner()
    ok = runner.invoke(cli(), ["audit", "verify", "--url", f"sqlite:///{path}"])
    assert ok.exit_code == 0, ok.output
    assert "audit chain intact: 8 rows" in ok.output
    assert "UNKEYED: row hashes are plain SHA-256" in ok.output
    copy = tampered_copy(path, tmp_path, "UPDATE audit_log SET output = '[]' WHERE seq = 5")
    broken = runner.invoke(cli(), ["audit", "verify", "--url", f"sqlite:///{copy}"])
    assert broken.exit_code == 1
    assert "TAMPERED row 5: contents changed" in broken.output
    assert "NOT PROTECTED trigger audit_log_no_update is missing" in broken.output
    missing = runner.invoke(cli(), ["audit", "verify", "--url", f"sqlite:///{tmp_path}/no.db"])
    assert missing.exit_code == 2
    assert not (tmp_path / "no.db").exists()


def test_keys_new_command_stores_only_the_hash(tmp_path):
    file = tmp_path / "keys.json"
    runner = CliRunner()
    made = runner.invoke(cli(), ["keys", "new", "--id", "dr-who", "--role", "clinician",
                                 "--file", str(file)])
    assert made.exit_code == 0, made.output
    key = made.output.strip()
    assert key not in file.read_text()
    assert KeyStore.from_file(file).authenticate(key).id == "dr-who"
    again = runner.invoke(cli(), ["keys", "new", "--id", "dr-who", "--role", "admin",
                                  "--file", str(file)])
    assert again.exit_code == 2 and "already has a key" in again.output
    bad = runner.invoke(cli(), ["keys", "new", "--id", "x", "--role", "root", "--file", str(file)])
    assert bad.exit_code == 2


def test_concurrent_requests_are_batched_and_each_audited(tmp_path):
    """16 requests arrive while the worker is busy: fewer model calls, one row each."""
    from concurrent.futures import ThreadPoolExecutor

    from medpredict.serve.batching import PredictionQueue
    from medpredict.serve.models import ServedModel

    model = ServedModel.from_dir(pima_model())
    patients = pima_test_patients(17)
    expected = model.predict(patients)
    original, sizes, release = model.predict_checked, [], threading.Event()

    def slow_first_call(checked):
        sizes.append(len(checked.frame))
        if len(sizes) == 1:
            release.wait(10)
        return original(checked)

    model.predict_checked = slow_first_call
    log = AuditLog(f"sqlite:///{tmp_path / 'b.db'}")
    queue = PredictionQueue(log)

    def ask(i: int):
        rows = [patients[i]]
        return queue.run(queue.submit(model, model.validator.validate(rows), f"caller-{i}",
                                      "predict", f"hash-{i}"))

    with ThreadPoolExecutor(17) as pool:
        first = pool.submit(ask, 0)
        while not sizes:
            threading.Event().wait(0.01)
        rest = [pool.submit(ask, i) for i in range(1, 17)]
        while queue._queue.qsize() < 16:
            threading.Event().wait(0.01)
        release.set()
        answers = [first.result(), *(f.result() for f in rest)]
    queue.close()
    assert sizes == [1, 16]
    for i, (predictions, seq) in enumerate(answers):
        assert predictions[0].risk == pytest.approx(expected[i].risk, abs=1e-12)
        row = rows_of(tmp_path / "b.db")[seq - 1]
        assert (row["principal"], row["input_sha256"]) == (f"caller-{i}", f"hash-{i}")
    assert verify_chain(log.engine).rows == 17


# ---- keyed chain: tampering by someone who can write to the database but lacks the key ----
CHAIN_KEY = "chain-key-kept-away-from-the-database"
FIELDS = ("seq", "ts", "principal", "action", "model_name", "model_version", "model_sha256",
          "input_sha256", "output", "prev_hash")


def plain_hash(row: dict) -> str:
    return hashlib.sha256(canonical_json([row[k] for k in FIELDS]).encode()).hexdigest()


@pytest.fixture(scope="module")
def keyed(tmp_path_factory) -> Path:
    """A keyed audit database written by the service (key from the environment)."""
    path = tmp_path_factory.mktemp("keyed") / "audit.db"
    with pytest.MonkeyPatch.context() as env:
        env.setenv(CHAIN_KEY_ENV, CHAIN_KEY)
        settings = ServeSettings(keys_file=keys()["file"], audit_url=f"sqlite:///{path}")
        client = TestClient(create_app([pima_model()], settings))
        for patient in pima_test_patients(4):
            answer = client.post("/v1/models/pima/predict", json={"rows": [patient]},
                                 headers={"X-API-Key": keys()["clinician"]})
            assert answer.status_code == 200
    return path


def test_genuine_keyed_log_is_intact(keyed):
    report = verify_chain(f"sqlite:///{keyed}", chain_key=CHAIN_KEY)
    assert report.ok and report.keyed and report.rows == 4
    assert not report.unprotected
    row = rows_of(keyed)[0]
    assert row["hash"] == hmac.new(CHAIN_KEY.encode(), canonical_json(
        [row[k] for k in FIELDS]).encode(), hashlib.sha256).hexdigest()


def test_edit_and_recompute_every_hash_without_the_key_is_detected(keyed, tmp_path):
    """The attacker edits row 2 and rebuilds the whole chain with plain SHA-256."""
    copy = tampered_copy(keyed, tmp_path)
    prev = "0" * 64
    with sqlite3.connect(copy) as connection:
        for row in rows_of(copy):
            if row["seq"] == 2:
                row["output"] = '[{"risk":0.01}]'
            row["prev_hash"] = prev
            row["hash"] = prev = plain_hash(row)
            connection.execute("UPDATE audit_log SET output = ?, prev_hash = ?, hash = ? "
                               "WHERE seq = ?", (row["output"], row["prev_hash"], row["hash"],
                                                 row["seq"]))
    assert verify_chain(f"sqlite:///{copy}").intact  # what an unkeyed check would accept
    report = verify_chain(f"sqlite:///{copy}", chain_key=CHAIN_KEY)
    assert not report.ok
    assert report.problems[:4] == [f"row {n}: hashed without the chain key (forged or "
                                   "written unkeyed)" for n in range(1, 5)]
    assert report.unprotected == ["trigger audit_log_no_update is missing",
                                  "trigger audit_log_no_delete is missing"]


def test_appended_forged_row_is_detected_even_with_its_anchor(keyed, tmp_path):
    copy = tampered_copy(keyed, tmp_path)
    last = rows_of(copy)[-1]
    forged = {**last, "seq": last["seq"] + 1, "principal": "dr-mallory",
              "prev_hash": last["hash"]}
    forged["hash"] = plain_hash(forged)
    with sqlite3.connect(copy) as connection:
        connection.execute(f"INSERT INTO audit_log VALUES ({', '.join('?' * 11)})",
                           [forged[k] for k in (*FIELDS, "hash")])
    anchor = (forged["seq"], forged["hash"])
    report = verify_chain(f"sqlite:///{copy}", anchor=anchor, chain_key=CHAIN_KEY)
    assert report.problems == ["row 5: hashed without the chain key (forged or written unkeyed)"]
    wrong = verify_chain(f"sqlite:///{copy}", chain_key="another-key-of-at-least-32-bytes")
    assert "no row checked verifies with the chain key: wrong key, or the rows were rewritten" \
        in wrong.problems


def test_dropped_triggers_are_reported(keyed, tmp_path, monkeypatch):
    copy = tampered_copy(keyed, tmp_path)
    report = verify_chain(f"sqlite:///{copy}", chain_key=CHAIN_KEY)
    assert report.intact and not report.ok
    assert report.unprotected == ["trigger audit_log_no_update is missing",
                                  "trigger audit_log_no_delete is missing"]
    monkeypatch.setenv(CHAIN_KEY_ENV, CHAIN_KEY)
    result = CliRunner().invoke(cli(), ["audit", "verify", "--url", f"sqlite:///{copy}"])
    assert result.exit_code == 1
    assert "NOT PROTECTED trigger audit_log_no_delete is missing" in result.output
    assert "audit chain intact: 4 rows" in result.output and "; NOT PROTECTED" in result.output


def test_verify_command_with_the_key(keyed, tmp_path, monkeypatch):
    monkeypatch.setenv(CHAIN_KEY_ENV, CHAIN_KEY)
    runner = CliRunner()
    ok = runner.invoke(cli(), ["audit", "verify", "--url", f"sqlite:///{keyed}"])
    assert ok.exit_code == 0, ok.output
    assert "keyed: row hashes checked with the chain key (HMAC-SHA256)" in ok.output
    assert "audit chain intact: 4 rows" in ok.output
    assert "append-only triggers in place" in ok.output
    monkeypatch.delenv(CHAIN_KEY_ENV)
    unkeyed = runner.invoke(cli(), ["audit", "verify", "--url", f"sqlite:///{keyed}"])
    assert unkeyed.exit_code == 1
    assert f"the log is keyed (set {CHAIN_KEY_ENV})" in unkeyed.output


def test_writer_refuses_to_mix_keys(keyed, audited, tmp_path):
    copy = tampered_copy(keyed, tmp_path)
    with pytest.raises(ValueError, match="the log is keyed"):
        AuditLog(f"sqlite:///{copy}")
    with pytest.raises(ValueError, match="wrong key, or the log was tampered with"):
        AuditLog(f"sqlite:///{copy}", chain_key="another-key-of-at-least-32-bytes")
    with pytest.raises(ValueError, match="written without a chain key"):
        AuditLog(f"sqlite:///{audited[0]}", chain_key=CHAIN_KEY)
    with pytest.raises(ValueError, match="at least 32 bytes, got 5"):
        AuditLog("sqlite://", chain_key="short")


# ---- the database file and its availability ------------------------------------------------
def test_database_files_are_owner_only(tmp_path):
    """Synthetic outputs; the umask of a typical login shell would allow 0644."""
    previous = os.umask(0o022)
    try:
        path = tmp_path / "private.db"
        log = AuditLog(f"sqlite:///{path}")
        log.append("dr-who", "predict", {"name": "m", "version": "1", "sha256": "0" * 64},
                   "x", {"risk": 0.5})
        made = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
        assert all(p.is_file() for p in made)
        assert {p: p.stat().st_mode & 0o777 for p in made} == {p: 0o600 for p in made}
        old = tmp_path / "old.db"
        sqlite3.connect(old).close()
        old.chmod(0o644)
        AuditLog(f"sqlite:///{old}")
        assert old.stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(previous)


def test_locked_database_answers_503_and_withholds_the_prediction(tmp_path):
    path = tmp_path / "locked.db"
    settings = ServeSettings(keys_file=keys()["file"], audit_url=f"sqlite:///{path}")
    client = TestClient(create_app([pima_model()], settings))
    body = {"rows": pima_test_patients(1)}
    clinician = {"X-API-Key": keys()["clinician"]}
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        refused = client.post("/v1/models/pima/predict", json=body, headers=clinician)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert refused.status_code == 503
    assert int(refused.headers["Retry-After"]) > 0
    assert "predictions" not in refused.json() and "risk" not in refused.text
    assert rows_of(path) == []
    answered = client.post("/v1/models/pima/predict", json=body, headers=clinician)
    assert answered.status_code == 200 and answered.json()["audit_seq"] == 1


def test_locked_database_raises_audit_unavailable(tmp_path):
    """Synthetic output: the writer gives up after its lock timeout with a clear error."""
    path = tmp_path / "busy.db"
    log = AuditLog(f"sqlite:///{path}", lock_timeout=0.1)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(AuditUnavailableError, match="database is locked"):
            log.append("dr-who", "predict", {"name": "m", "version": "1", "sha256": "0" * 64},
                       "x", {"risk": 0.5})
    finally:
        holder.execute("ROLLBACK")
        holder.close()


@pytest.mark.parametrize("content", [os.urandom(4096), b"patient,risk\n1,0.4\n"],
                         ids=["random-bytes", "text-file"])
def test_verify_command_on_a_file_that_is_not_sqlite(tmp_path, content):
    path = tmp_path / "not-a.db"
    path.write_bytes(content)
    result = CliRunner().invoke(cli(), ["audit", "verify", "--url", f"sqlite:///{path}"])
    assert result.exit_code == 2
    assert result.output == (f"error: cannot read the audit database {path}: "
                             "file is not a database\n")
    assert path.read_bytes() == content


POSTGRES_URL = os.environ.get("MEDPREDICT_TEST_POSTGRES_URL")


@pytest.mark.skipif(POSTGRES_URL is None, reason="set MEDPREDICT_TEST_POSTGRES_URL to a "
                    "scratch PostgreSQL database (e.g. postgresql+psycopg://postgres@127.0.0.1/x)")
def test_postgresql_chain_triggers_and_tamper_detection():
    """Synthetic outputs, real PostgreSQL: concurrent writers, refused edits, detection."""
    from sqlalchemy import create_engine, text

    scratch = create_engine(POSTGRES_URL)
    with scratch.begin() as connection:
        connection.execute(text("DROP TABLE IF EXISTS audit_log"))
        connection.execute(text("DROP FUNCTION IF EXISTS audit_log_refuse"))
    log = AuditLog(POSTGRES_URL)
    model = {"name": "m", "version": "1", "sha256": "0" * 64}
    threads = [threading.Thread(target=lambda w=w: [log.append(f"w{w}", "predict", model,
                                                               str(i), {"risk": 0.1})
                                                    for i in range(10)]) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    AuditLog(POSTGRES_URL).append("second-writer", "predict", model, "x", {"risk": 0.2})
    assert verify_chain(POSTGRES_URL).rows == 41 and verify_chain(POSTGRES_URL).ok
    for statement in ("UPDATE audit_log SET output = '[]' WHERE seq = 3",
                      "DELETE FROM audit_log WHERE seq = 41", "TRUNCATE audit_log"):
        with pytest.raises(Exception, match="append-only"), scratch.begin() as connection:
            connection.execute(text(statement))
    with scratch.begin() as connection:
        connection.execute(text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only"))
        connection.execute(text("UPDATE audit_log SET principal = 'mallory' WHERE seq = 7"))
    report = verify_chain(POSTGRES_URL)
    assert report.problems == ["row 7: contents changed since it was written"]
    assert report.unprotected == ["trigger audit_log_append_only is disabled"]
