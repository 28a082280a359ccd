"""How long the fleet simulator takes to write one 10 s 720p camera file. Prints JSON.

usage: python benchmarks/simulator.py [--fps 10 36]
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from builders import make_params  # noqa: E402
from curation.policy.params import load_params  # noqa: E402
from curation.sources.faces import face_bank  # noqa: E402
from curation.sources.simulator import simulate_fleet  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fps", type=float, nargs="+", default=[10.0, 36.0])
    args = parser.parse_args()
    face_bank()  # built once per machine; not part of a file's cost
    results = []
    with tempfile.TemporaryDirectory() as folder:
        params = load_params(make_params(Path(folder)))
        for fps in args.fps:
            config = params.simulate.model_validate({**params.simulate.model_dump(), "vehicles": 1, "events": 1, "seconds": 10.0,
                                                     "fps": fps, "cameras": ("front",), "rates": {}})
            start = time.perf_counter()
            simulate_fleet(Path(folder) / f"fps{fps:g}", params, "cn", config, progress=False)
            seconds = time.perf_counter() - start
            results.append({"fps": fps, "frames": int(10 * fps), "seconds": round(seconds, 2),
                            "frames_per_s": round(10 * fps / seconds, 1), "realtime_factor": round(10 / seconds, 2)})
    print(json.dumps({"benchmark": "simulator", "clip": "10 s, 1280x720, front camera", "runs": results}, indent=1))


if __name__ == "__main__":
    main()
