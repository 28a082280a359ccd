"""Can a swapped hard link get another region's bytes read through the guard? Prints JSON.

A process on the other core puts a hard link to an eu file under cn's name ``landing/x.bin`` and
cn's own file back, as fast as it can; this process opens that name through the local store's
descriptor walk (curation.storage.localfs: O_NOFOLLOW, then ``pin``) for ``--seconds`` and counts
what each open gave: cn's bytes, eu's bytes (a leak), or a refusal. Before ``pin`` waited out
renames in flight, eu's bytes came through about 30 times a second here.

usage: python benchmarks/guard_race.py [--seconds 20]
"""

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from curation.storage.localfs import LocalRoot, Refused  # noqa: E402

CN, EU = b"cn bytes", b"EU-ONLY-SECRET-BYTES"


def swap(landing: Path, target: Path, stop) -> None:
    while not stop.is_set():
        os.link(target, landing / "planted")
        os.replace(landing / "planted", landing / "x.bin")  # cn's name now leads to eu's file
        (landing / "own").write_bytes(CN)
        os.replace(landing / "own", landing / "x.bin")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        landing = base / "cn" / "landing"
        landing.mkdir(parents=True)
        (base / "eu").mkdir()
        target = base / "eu" / "secret.bin"
        target.write_bytes(EU)
        (landing / "x.bin").write_bytes(CN)
        disk = LocalRoot(str(base / "cn"))
        context = multiprocessing.get_context("fork")
        stop = context.Event()
        swapper = context.Process(target=swap, args=(landing, target, stop))
        swapper.start()
        counts = {"cn_bytes": 0, "eu_bytes": 0, "refused": 0, "missing": 0}
        deadline = time.monotonic() + args.seconds
        try:
            while time.monotonic() < deadline:
                try:
                    fd = disk.open(("landing", "x.bin"), os.O_RDONLY)
                except Refused:
                    counts["refused"] += 1
                    continue
                except FileNotFoundError:
                    counts["missing"] += 1
                    continue
                data = os.read(fd, 64)
                os.close(fd)
                counts["eu_bytes" if data == EU else "cn_bytes"] += 1
        finally:
            stop.set()
            swapper.join()
    print(json.dumps({"benchmark": "guard_race", "seconds": args.seconds, "opens": sum(counts.values()), **counts}, indent=1))


if __name__ == "__main__":
    main()
