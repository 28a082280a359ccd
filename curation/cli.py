"""The `curation` command: humans' tools around the pipeline (`dvc repro` runs the stages).

User mistakes print one line and exit non-zero (2 for a policy problem, 3 for a residency
violation); tracebacks are for bugs only.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from curation.errors import CurationError

app = typer.Typer(
    help="Curate fleet camera clips into training sets, one jurisdiction at a time.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
policy_app = typer.Typer(help="Check params.yaml and dvc.yaml against the residency rules.", no_args_is_help=True)
audit_app = typer.Typer(help="Inspect and verify a region's tamper-evident audit log.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")
app.add_typer(audit_app, name="audit")

PARAMS = typer.Option(Path("params.yaml"), "--params", help="params.yaml to read (default: ./params.yaml).")


@policy_app.command("check")
def policy_check(
    params: Path = PARAMS,
    dvc: Path = typer.Option(Path("dvc.yaml"), "--dvc", help="Pipeline to check (default: ./dvc.yaml)."),
):
    """Validate params and check that every region's outputs go to that region's DVC remote only."""
    from curation.policy.check import check_pipeline
    from curation.policy.params import load_params

    loaded = load_params(params)
    violations = check_pipeline(loaded, dvc) if dvc.exists() else []
    for violation in violations:
        typer.echo(str(violation))
    if violations:
        raise typer.Exit(1)
    note = "" if dvc.exists() else f" ({dvc} not found: pipeline not checked)"
    typer.echo(f"policy check: {params} valid, {len(loaded.regions)} regions; {dvc} clean{note}")


@audit_app.command("verify")
def audit_verify(region: str = typer.Option(..., "--region", "-r", help="Region whose log to verify."), params: Path = PARAMS):
    """Re-hash the region's audit log; exit 1 naming the first edited, missing or inserted line."""
    from curation.policy.params import load_params
    from curation.storage.store import RegionStore

    store = RegionStore(load_params(params), region)
    count = store.audit.verify()
    typer.echo(f"audit log of {region} intact: {count} records ({store.audit.path})")


@audit_app.command("show")
def audit_show(
    region: str = typer.Option(..., "--region", "-r", help="Region whose log to show."),
    last: int = typer.Option(20, help="How many of the newest records to print."),
    params: Path = PARAMS,
):
    """Print the newest audit records as JSON lines."""
    import json

    from curation.policy.params import load_params
    from curation.storage.store import RegionStore

    for record in RegionStore(load_params(params), region).audit.records()[-last:]:
        typer.echo(json.dumps(record, ensure_ascii=False))


def main() -> None:
    try:
        app()
    except CurationError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(error.exit_code)


if __name__ == "__main__":
    main()
