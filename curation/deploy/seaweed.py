"""The S3 deployment on one machine: SeaweedFS (`weed mini`) on 127.0.0.1, one bucket and one identity per region.

Each region's identity may act on its own bucket only (SeaweedFS per-bucket actions), so the
store itself refuses a cn key on the eu bucket, below anything our code checks. A separate admin
identity creates the buckets. Every port is picked free on 127.0.0.1; nothing listens elsewhere.

    python -m curation.deploy.seaweed DIR [--regions cn eu us]   (what `make s3` runs; Ctrl-C stops it)

Example:
    >>> with SeaweedS3.start(Path("build/s3"), ["cn", "eu"]) as s3:    # doctest: +SKIP
    ...     s3.env()["CURATION_S3_CN_KEY"]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["SeaweedS3", "bucket_of", "key_env", "secret_env"]

GRPC_OFFSET = 10000  # SeaweedFS puts each gRPC port here above its HTTP port


def bucket_of(region: str) -> str:
    return f"curation-{region}"


def key_env(region: str) -> str:
    return f"CURATION_S3_{region.upper()}_KEY"


def secret_env(region: str) -> str:
    return f"CURATION_S3_{region.upper()}_SECRET"


def _free_port() -> int:
    """A free 127.0.0.1 port whose gRPC twin (+10000) is free too."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port + GRPC_OFFSET < 65536:
            with socket.socket() as twin:
                try:
                    twin.bind(("127.0.0.1", port + GRPC_OFFSET))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port pair on 127.0.0.1")


@dataclass
class SeaweedS3:
    folder: Path
    endpoint: str
    credentials: dict[str, tuple[str, str]]  # region -> (access key, secret); "admin" creates buckets
    process: subprocess.Popen = field(repr=False)

    @classmethod
    def start(cls, folder: Path, regions: list[str], timeout_s: float = 60.0) -> "SeaweedS3":
        weed = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
        folder = Path(folder).resolve()
        (folder / "data").mkdir(parents=True, exist_ok=True)
        credentials = {name: (f"{name}-{secrets.token_hex(6)}", secrets.token_hex(20)) for name in [*regions, "admin"]}
        actions = ("Read", "Write", "List", "Tagging", "Admin")
        identities = [{"name": name, "credentials": [{"accessKey": key, "secretKey": secret}],
                       "actions": list(actions) if name == "admin" else [f"{a}:{bucket_of(name)}" for a in actions]}
                      for name, (key, secret) in credentials.items()]
        (folder / "s3.json").write_text(json.dumps({"identities": identities}, indent=1))
        ports = {name: _free_port() for name in ("master", "volume", "filer", "s3")}
        command = [weed, "mini", f"-dir={folder / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-master.telemetry=false",
                   "-admin.ui=false", "-webdav=false", f"-master.port={ports['master']}", f"-volume.port={ports['volume']}",
                   f"-filer.port={ports['filer']}", f"-s3.port={ports['s3']}", f"-s3.config={folder / 's3.json'}"]
        log = open(folder / "weed.log", "wb")
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        s3 = cls(folder, f"http://127.0.0.1:{ports['s3']}", credentials, process)
        s3._wait(timeout_s)
        for region in regions:
            s3.filesystem("admin").mkdir(bucket_of(region))
        return s3

    def _wait(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"weed exited with {self.process.returncode}; see {self.folder / 'weed.log'}")
            try:
                self.filesystem("admin").ls("")
                return
            except Exception:  # noqa: BLE001  (not up yet)
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"SeaweedFS S3 did not answer within {timeout_s:.0f} s; see {self.folder / 'weed.log'}")

    def filesystem(self, identity: str):
        """An s3fs filesystem holding one identity's keys (what RegionStore builds from params)."""
        import s3fs

        key, secret = self.credentials[identity]
        return s3fs.S3FileSystem(key=key, secret=secret, client_kwargs={"endpoint_url": self.endpoint, "region_name": "us-east-1"},
                                 skip_instance_cache=True)

    def env(self) -> dict[str, str]:
        """The environment variables params.yaml's s3 blocks name (one key pair per region)."""
        out = {}
        for region, (key, secret) in self.credentials.items():
            if region != "admin":
                out[key_env(region)], out[secret_env(region)] = key, secret
        return out

    def region_params(self, region: str, prefix: str = "store") -> dict:
        """A region's store and s3 block for params.yaml."""
        return {"store": f"s3://{bucket_of(region)}/{prefix}",
                "s3": {"endpoint_url": self.endpoint, "key_env": key_env(region), "secret_env": secret_env(region)}}

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)

    def __enter__(self) -> "SeaweedS3":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--regions", nargs="+", default=["cn", "eu", "us"])
    args = parser.parse_args()
    with SeaweedS3.start(args.folder, args.regions) as s3:
        print(f"SeaweedFS S3 on {s3.endpoint} (127.0.0.1 only); buckets: {', '.join(bucket_of(r) for r in args.regions)}")
        print("# environment for the region keys (each opens its own bucket only):")
        for name, value in s3.env().items():
            print(f"export {name}={value}")
        print("# params.yaml regions.<R> settings:")
        for region in args.regions:
            print(f"{region}: {json.dumps(s3.region_params(region))}")
        print("Ctrl-C stops it.")
        try:
            s3.process.wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
