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
fleet_app = typer.Typer(help="Simulate fleet uploads (TeslaCam folders with SEI telemetry) for tests and demos.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")
app.add_typer(audit_app, name="audit")
app.add_typer(fleet_app, name="fleet")

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


@fleet_app.command("simulate")
def fleet_simulate(
    region: str = typer.Option(..., "--region", "-r", help="Region whose plates, signs, cities and zones to use."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write the upload into (created; existing files are overwritten)."),
    vehicles: int = typer.Option(None, help="Vehicles (default: params simulate.vehicles)."),
    events: int = typer.Option(None, help="Events per vehicle (default: params simulate.events)."),
    seed: int = typer.Option(None, help="Random seed; the same seed gives the same bytes (default: params simulate.seed)."),
    seconds: float = typer.Option(None, help="Length of each clip in seconds (default: params)."),
    width: int = typer.Option(None, help="Frame width in pixels (default: params, 1280)."),
    height: int = typer.Option(None, help="Frame height in pixels (default: params, 720)."),
    fps: float = typer.Option(None, help="Frames per second (default: params; Tesla records about 36)."),
    cameras: str = typer.Option(None, help="Comma-separated cameras, e.g. front,back,left_repeater (default: params)."),
    clean: bool = typer.Option(False, "--clean", help="Write no faults: every file valid, every vehicle consenting."),
    params: Path = PARAMS,
):
    """Write a simulated fleet upload: TeslaCam clips with SEI telemetry, event.json and ground truth."""
    from curation.policy.params import FaultRates, load_params
    from curation.sources.simulator import simulate_fleet

    loaded = load_params(params)
    loaded.region(region)
    update = {k: v for k, v in dict(vehicles=vehicles, events=events, seed=seed, seconds=seconds, width=width, height=height,
                                    fps=fps).items() if v is not None}
    if cameras:
        update["cameras"] = tuple(c.strip() for c in cameras.split(","))
    if clean:
        update["rates"] = FaultRates()
    config = type(loaded.simulate).model_validate({**loaded.simulate.model_dump(), **update})
    manifest = simulate_fleet(out, loaded, region, config)
    files = sum(len(e["cameras"]) for e in manifest["events"])
    typer.echo(f"wrote {len(manifest['events'])} events, {files} camera files of {len(manifest['vehicles'])} vehicles to {out}")


@app.command("ingest")
def ingest_command(
    region: str = typer.Option(..., "--region", "-r", help="Region whose landing zone to ingest."),
    landing: str = typer.Option("landing", help="Landing prefix inside the region's store (default: landing)."),
    params: Path = PARAMS,
):
    """Catalog or quarantine every new file in a region's landing zone (what `dvc repro ingest@R` runs)."""
    import json

    from curation.policy.params import load_params
    from curation.sources.ingest import ingest
    from curation.storage.store import RegionStore

    loaded = load_params(params)
    typer.echo(json.dumps(ingest(RegionStore(loaded, region), landing, loaded.ingest), indent=1))


@app.command("status")
def status_command(
    region: str = typer.Option(None, "--region", "-r", help="One region (default: every region in params)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    params: Path = PARAMS,
):
    """Per region: clips, hours of video, frames, quarantined by reason, duplicates."""
    import json

    from rich.console import Console
    from rich.table import Table

    from curation.policy.params import load_params
    from curation.sources.ingest import summarize
    from curation.storage.catalog import Catalog
    from curation.storage.store import RegionStore

    loaded = load_params(params)
    names = [region] if region else list(loaded.regions)
    reports = [summarize(Catalog(RegionStore(loaded, name)), name) for name in names]
    if as_json:
        typer.echo(json.dumps(reports, indent=1))
        return
    table = Table(title="catalog status")
    for column in ("region", "clips", "hours", "frames", "truncated kept", "quarantined (by reason)", "duplicates", "arrived"):
        table.add_column(column, justify="left" if column.startswith(("region", "quar")) else "right")
    for report in reports:
        t = report["totals"]
        reasons = ", ".join(f"{k} {v}" for k, v in t["quarantined_by_reason"].items()) or "-"
        table.add_row(report["region"], str(t["cataloged"]), f"{t['hours']:.3f}", str(t["frames"]), str(t["truncated_kept"]),
                      f"{t['quarantined']}: {reasons}" if t["quarantined"] else "0", str(t["duplicates"]), str(t["arrived"]))
    Console(width=160).print(table)


def main() -> None:
    try:
        app()
    except CurationError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(error.exit_code)


if __name__ == "__main__":
    main()
