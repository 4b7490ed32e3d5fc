"""Command-line entry points: ``serve``, ``keys new`` and ``audit verify``.

Register them on the main CLI as::

    app.command("serve")(serve_command)
    app.add_typer(keys_app, name="keys")
    app.add_typer(audit_app, name="audit")
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medpredict.serve.auth import ROLES, add_key_to_file, new_api_key

audit_app = typer.Typer(help="Check the prediction audit log.", no_args_is_help=True)
keys_app = typer.Typer(help="Manage API keys (stored hashed).", no_args_is_help=True)


def serve_command(
    model: Annotated[
        list[Path] | None,
        typer.Option("--model", help="Model directory to serve (repeat for several).",
                     exists=True, file_okay=False),
    ] = None,
    forecast: Annotated[
        list[Path] | None,
        typer.Option("--forecast", help="Forecast directory to serve (repeat for several).",
                     exists=True, file_okay=False),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    keys_file: Annotated[
        Path | None,
        typer.Option(help="Hashed API keys (JSON/YAML).", envvar="MEDPREDICT_KEYS_FILE",
                     exists=True, dir_okay=False),
    ] = None,
    audit_url: Annotated[
        str | None,
        typer.Option(help="Audit database URL (default sqlite:///medpredict-audit.db).",
                     envvar="MEDPREDICT_AUDIT_URL"),
    ] = None,
    fhir_mapping: Annotated[
        Path | None,
        typer.Option(help="LOINC-to-feature mapping file for FHIR and CDS Hooks.",
                     envvar="MEDPREDICT_FHIR_MAPPING_FILE", exists=True, dir_okay=False),
    ] = None,
    allow_anonymous: Annotated[
        bool, typer.Option(help="Let callers without credentials predict (demos only).")
    ] = False,
    ssl_certfile: Annotated[Path | None, typer.Option(help="TLS certificate (PEM).")] = None,
    ssl_keyfile: Annotated[Path | None, typer.Option(help="TLS private key (PEM).")] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Worker processes. More than 1 needs a PostgreSQL audit log (appends are "
            "serialised there); each worker keeps its own rate-limit counters.",
        ),
    ] = 1,
) -> None:
    """Serve models over HTTP: JSON, FHIR R4, CDS Hooks and a clinician web page.

    Secrets come from the environment only: MEDPREDICT_JWT_SECRET (or
    MEDPREDICT_JWT_PUBLIC_KEY_FILE), MEDPREDICT_AUDIT_HMAC_KEY.
    """
    from medpredict.serve.config import ServeSettings
    from medpredict.serve.runner import serve

    settings = ServeSettings.from_env(
        keys_file=keys_file,
        audit_url=audit_url,
        fhir_mapping_file=fhir_mapping,
        allow_anonymous=allow_anonymous or None,
    )
    if not model and not forecast:
        typer.echo("error: give at least one --model or --forecast directory", err=True)
        raise typer.Exit(2)
    try:
        serve(list(model or []), settings, host, port, ssl_certfile, ssl_keyfile,
              forecasts=list(forecast or []), workers=workers)
    except ValueError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None


@keys_app.command("new")
def new_key(
    key_id: Annotated[str, typer.Option("--id", help="Caller id recorded in the audit log.")],
    role: Annotated[list[str], typer.Option(help=f"Role(s): {', '.join(ROLES)}.")],
    file: Annotated[Path, typer.Option(help="Key file to add the hash to (created if absent).")],
) -> None:
    """Create an API key: its hash goes to FILE, the key is printed once."""
    try:
        key, entry = new_api_key(key_id, role)
        add_key_to_file(file, entry)
    except ValueError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    typer.echo(key)


@audit_app.command("verify")
def verify(
    url: Annotated[
        str,
        typer.Option(help="Audit database URL.", envvar="MEDPREDICT_AUDIT_URL"),
    ] = "sqlite:///medpredict-audit.db",
    anchor: Annotated[
        str | None,
        typer.Option(help="SEQ:HASH of a head recorded earlier (detects removed rows)."),
    ] = None,
) -> None:
    """Recompute the audit log's hash chain and check its append-only triggers.

    Row hashes are checked with the chain key from MEDPREDICT_AUDIT_CHAIN_KEY when it
    is set. Exits 1 if the chain was tampered with or the triggers are missing.
    """
    from medpredict.serve.audit import CHAIN_KEY_ENV, verify_chain

    expected = None
    if anchor is not None:
        seq, _, digest = anchor.partition(":")
        if not seq.isdigit() or len(digest) != 64:
            typer.echo("error: --anchor must look like 1234:<64 hex digits>", err=True)
            raise typer.Exit(2)
        expected = (int(seq), digest)
    try:
        report = verify_chain(url, expected)
    except ValueError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    for problem in report.problems:
        typer.echo(f"TAMPERED {problem}")
    for missing in report.unprotected:
        typer.echo(f"NOT PROTECTED {missing}: the database accepts edits and deletions")
    if report.keyed:
        typer.echo("keyed: row hashes checked with the chain key (HMAC-SHA256)")
    else:
        typer.echo(f"UNKEYED: row hashes are plain SHA-256 ({CHAIN_KEY_ENV} not set); anyone "
                   "who can write to the database can rewrite rows and recompute every hash")
    state = "intact" if report.intact else "BROKEN"
    protection = "append-only triggers in place" if not report.unprotected else "NOT PROTECTED"
    head = f"{report.head_seq}:{report.head_hash}"
    typer.echo(f"audit chain {state}: {report.rows} rows, head {head}; {protection}")
    if not report.ok:
        raise typer.Exit(1)
