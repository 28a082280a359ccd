"""Ingest's peak memory and speed on whole camera minutes, short and long. Prints JSON.

For each clip length: one simulated vehicle with two minutes of the front camera, as a car writes
them. Each case runs ``ingest`` in its own child process, and its peak resident memory is what the
kernel reports for that child (``os.wait4``'s ru_maxrss):

- ``imports``: the child imports ingest and opens the catalog, nothing more (the floor);
- ``complete``: both files whole;
- ``rebuilt``: the later file cut as a pulled drive leaves it (90 % in, no moov), rebuilt from mdat
  with the earlier minute as its reference.

Linux carries a process's peak RSS across exec, so a child started by a big parent reports at
least the parent's size: this parent imports nothing of curation, and simulating and cutting run in
children of their own. Streaming means the 60 s cases stay within 10 % of the 10 s ones.

usage: python benchmarks/ingest.py [--seconds 10 60] [--width 1280] [--height 960] [--fps 36]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _setup_path() -> None:
    sys.path[:0] = [str(REPO), str(REPO / "tests")]  # this checkout's code, not an installed one


def simulate(folder: Path, seconds: float, width: int, height: int, fps: float) -> None:
    _setup_path()
    from builders import make_params
    from curation.policy.params import load_params
    from curation.sources.simulator import simulate_fleet

    folder.mkdir(parents=True)
    params = load_params(make_params(folder, regions=("cn",)))
    config = params.simulate.model_validate({**params.simulate.model_dump(), "vehicles": 1, "events": 2, "seconds": seconds, "width": width,
                                             "height": height, "fps": fps, "cameras": ("front",), "rates": {}})
    start = time.perf_counter()
    manifest = simulate_fleet(folder / "landing", params, "cn", config, progress=False)
    later = max(manifest["events"], key=lambda e: e["stamp"])["cameras"]["front"]["file"]
    sizes = sorted(round(path.stat().st_size / 1e6, 1) for path in (folder / "landing").rglob("*.mp4"))
    print(json.dumps({"simulate_s": round(time.perf_counter() - start, 1), "later": later, "megabytes": sizes}))


def cut(path: Path) -> None:
    _setup_path()
    import numpy as np

    from curation.sources.simulator import pull_drive

    pull_drive([path], np.random.default_rng(0), moment=0.9)


def ingest_child(root: Path, source: Path | None) -> None:
    """Set up a project under root whose landing zone links source's files, then ingest it."""
    _setup_path()
    from builders import make_params
    from curation.policy.params import load_params
    from curation.sources.ingest import ingest
    from curation.storage.catalog import Catalog
    from curation.storage.store import RegionStore

    root.mkdir(parents=True)
    params = load_params(make_params(root, regions=("cn",)))
    store = RegionStore(params, "cn", actor="benchmark")
    if source is None:
        Catalog(store).table("clips")
        print(json.dumps({"seconds": 0.0, "frames": 0}))
        return
    shutil.copytree(source, Path(params.regions["cn"].store) / "landing", copy_function=os.link)
    start = time.perf_counter()
    totals = ingest(store, "landing", params.ingest, progress=False)["totals"]
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": round(seconds, 2), "frames": totals["frames"], "frames_per_s": round(totals["frames"] / seconds, 1),
                      "truncated_kept": totals["truncated_kept"], "quarantined": totals["quarantined"]}))


def run(*arguments: str) -> tuple[dict, float]:
    """Run this script as a child; its JSON output and its own peak RSS in MB."""
    process = subprocess.Popen([sys.executable, __file__, *arguments], stdout=subprocess.PIPE)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    if status:
        raise SystemExit(f"child failed: {arguments}")
    return (json.loads(output) if output.strip() else {}), round(usage.ru_maxrss / 1024, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, nargs="+", default=[10.0, 60.0], help="clip lengths (default: 10 60)")
    parser.add_argument("--width", type=int, default=1280, help="frame width (default: 1280, a Tesla front camera)")
    parser.add_argument("--height", type=int, default=960, help="frame height (default: 960)")
    parser.add_argument("--fps", type=float, default=36.0, help="frame rate (default: 36, Tesla's)")
    parser.add_argument("--simulate", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--cut", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--ingest", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--source", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.simulate:
        return simulate(args.simulate, args.seconds[0], args.width, args.height, args.fps)
    if args.cut:
        return cut(args.cut)
    if args.ingest:
        return ingest_child(args.ingest, args.source)
    runs = []
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        _, floor = run("--ingest", str(base / "floor"))
        for seconds in args.seconds:
            simulated = base / f"simulated-{seconds:g}"
            made, _ = run("--simulate", str(simulated), "--seconds", str(seconds), "--width", str(args.width), "--height", str(args.height),
                          "--fps", str(args.fps))
            landing = simulated / "landing"
            pulled = base / f"pulled-{seconds:g}"
            shutil.copytree(landing, pulled, copy_function=os.link)
            (pulled / made["later"]).unlink()
            shutil.copyfile(landing / made["later"], pulled / made["later"])
            run("--cut", str(pulled / made["later"]))
            entry = {"seconds": seconds, "files": 2, **{k: made[k] for k in ("megabytes", "simulate_s")}}
            for case, source in (("complete", landing), ("rebuilt", pulled)):
                result, peak = run("--ingest", str(base / f"{case}-{seconds:g}"), "--source", str(source))
                entry[case] = {**result, "peak_rss_mb": peak}
            runs.append(entry)
            for path in (simulated, pulled, base / f"complete-{seconds:g}", base / f"rebuilt-{seconds:g}"):
                shutil.rmtree(path)
    report = {"benchmark": "ingest", "resolution": f"{args.width}x{args.height}", "fps": args.fps, "imports_peak_rss_mb": floor, "runs": runs}
    if len(runs) >= 2:
        for case in ("complete", "rebuilt"):
            peaks = [r[case]["peak_rss_mb"] for r in runs]
            report[f"{case}_longest_over_shortest_peak_rss"] = round(peaks[-1] / peaks[0], 3)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
