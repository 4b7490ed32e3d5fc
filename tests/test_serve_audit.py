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
from medpredict.serve.audit import AuditLog, canonical_json, verify_chain
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
    assert verify_chain(f"sqlite:///{copy}").ok
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
    copy = tampered_copy(path, tmp_path, "UPDATE audit_log SET output = '[]' WHERE seq = 5")
    broken = runner.invoke(cli(), ["audit", "verify", "--url", f"sqlite:///{copy}"])
    assert broken.exit_code == 1
    assert "TAMPERED row 5: contents changed" in broken.output
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
    assert verify_chain(POSTGRES_URL).problems == ["row 7: contents changed since it was written"]
