"""What the residency guard and the MAC-chained audit log cost. Prints JSON.

Small-file reads and writes through RegionStore, refusals (each one an audit record), plain
appends, verify over the whole log, a 256 MB read through the checked descriptor, and a
library path (uri) over a catalog-sized folder.

usage: python benchmarks/guard.py [--records 20000]
"""

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from builders import make_params  # noqa: E402
from curation.errors import ResidencyViolation  # noqa: E402
from curation.policy.params import load_params  # noqa: E402
from curation.storage.store import RegionStore  # noqa: E402


def _rate(count: int, action) -> float:
    start = time.perf_counter()
    for i in range(count):
        action(i)
    return round(count / (time.perf_counter() - start), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=20_000, help="audit records appended before verify (default 20000)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        store = RegionStore(load_params(make_params(Path(folder))), "cn", actor="benchmark")
        results = {"writes_per_s": _rate(2000, lambda i: store.write_bytes(f"landing/v/{i % 200}.bin", b"x" * 1024))}
        results["reads_per_s"] = _rate(5000, lambda i: store.read_bytes(f"landing/v/{i % 200}.bin"))
        results["exists_per_s"] = _rate(5000, lambda i: store.exists(f"landing/v/{i % 400}.bin"))

        def refuse(i):
            try:
                store.read_bytes(f"../eu/landing/{i}")
            except ResidencyViolation:
                pass

        results["refusals_per_s"] = _rate(2000, refuse)
        results["appends_per_s"] = _rate(args.records, lambda i: store.audit.append("benchmark", "ingest", f"landing/{i}.mp4", "0" * 64, i=i))
        start = time.perf_counter()
        count = store.audit.verify()
        results["verify"] = {"records": count, "seconds": round(time.perf_counter() - start, 3),
                             "log_mb": round(Path(store.audit.path).stat().st_size / 1e6, 2)}
        with store.open("big.bin", "wb") as handle:
            for _ in range(256):
                handle.write(b"\0" * (1 << 20))
        start = time.perf_counter()
        digest = store.sha256("big.bin")
        results["sha256_256mb_s"] = round(time.perf_counter() - start, 3) if digest else None
        for i in range(5000):
            store.write_bytes(f"catalog/t.lance/data/{i % 50}/{i}.lance", b"x")
        start = time.perf_counter()
        for _ in range(10):
            store.uri("catalog")
        results["uri_5000_files_ms"] = round((time.perf_counter() - start) * 100, 1)
    results["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
