"""Fleet simulator: TeslaCam uploads (or generic clip + sidecar) with SEI telemetry and ground truth.

Writes what a fleet uploader would put in a region's landing zone::

    DIR/<vehicle_id>/consent.json
    DIR/<vehicle_id>/TeslaCam/SavedClips/<YYYY-MM-DD_HH-MM-SS>/<YYYY-MM-DD_HH-MM-SS>-front.mp4 ...
                                                               event.json, groundtruth.jsonl
    DIR/<vehicle_id>/TeslaCam/SentryClips/...  RecentClips/[YYYY-MM-DD/]...  clips/<name>.mp4+.json
    DIR/simulation.json   what was injected where (for tests; real uploads have none)

Camera files are laid out as a car writes them (one ``mdat``, sample tables in ``moov`` at the
end, an SEI before every frame's slice); generic clip + sidecar uploads come from other fleets'
recorders and are fragmented MP4. Same seed, same bytes. Faults (no consent, restricted-zone
crossings, wrong region, a drive pulled mid-minute, corrupt files, missing or malformed
event.json, duplicate uploads) come at the configured rates.

Example:
    >>> simulate_fleet(Path("landing"), params, "cn")     # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import av
import numpy as np
import shapely
from tqdm import tqdm

from curation.media.mp4 import scan
from curation.media.video import VideoWriter
from curation.policy.params import Params, RegionPolicy, SimulateParams
from curation.policy.zones import METRES_PER_DEG
from curation.sources.faces import face_bank
from curation.sources.scene import Camera, Scene
from curation.sources.sei import Telemetry, sei_nal

__all__ = ["simulate_fleet", "pull_drive", "Drive"]

WMI = {"cn": "LRW", "eu": "XP7", "us": "5YJ"}  # Tesla's world manufacturer identifiers
REASONS = ("user_interaction_dashcam_icon_tapped", "user_interaction_honk", "user_interaction_dashcam_launcher_action_tapped")


@dataclass(frozen=True)
class Drive:
    """Per-frame ego motion: what the SEI carries and what the scene renders."""

    lat: np.ndarray
    lon: np.ndarray
    heading: np.ndarray  # degrees, 0 = north
    speed: np.ndarray  # m/s
    distance: np.ndarray  # metres travelled since the first frame
    brake: np.ndarray
    autopilot: np.ndarray
    gear: int
    blinker_left: np.ndarray
    blinker_right: np.ndarray

    def telemetry(self, frame: int, seq0: int) -> Telemetry:
        accel = float(self.speed[min(frame + 1, len(self.speed) - 1)] - self.speed[frame])
        return Telemetry(version=1, gear_state=self.gear, frame_seq_no=seq0 + frame, vehicle_speed_mps=float(self.speed[frame]),
                         accelerator_pedal_position=0.2 if not self.brake[frame] else 0.0, steering_wheel_angle=0.0,
                         blinker_on_left=bool(self.blinker_left[frame]), blinker_on_right=bool(self.blinker_right[frame]),
                         brake_applied=bool(self.brake[frame]), autopilot_state=int(self.autopilot[frame]),
                         latitude_deg=float(self.lat[frame]), longitude_deg=float(self.lon[frame]),
                         heading_deg=float(self.heading[frame]), linear_acceleration_mps2_x=accel)


def _vin(style: str, rng: np.random.Generator) -> str:
    chars = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
    return WMI[style] + "".join(rng.choice(list(chars), 8)) + "".join(str(d) for d in rng.integers(0, 10, 6))


def _offset(lat: float, lon: float, north_m: float, east_m: float) -> tuple[float, float]:
    return lat + north_m / METRES_PER_DEG, lon + east_m / (METRES_PER_DEG * math.cos(math.radians(lat)))


def _drive(rng, config: SimulateParams, start: tuple[float, float], heading: float, curvature: float, scenario: str) -> Drive:
    n = max(1, int(round(config.seconds * config.fps)))
    dt = 1.0 / config.fps
    t = np.arange(n) * dt
    brake = np.zeros(n, bool)
    if scenario == "sentry":
        speed = np.zeros(n)
    elif scenario == "hard_brake":
        speed = np.full(n, rng.uniform(10, 18))
        start_brake = int(n * rng.uniform(0.25, 0.5))
        speed[start_brake:] = np.maximum(speed[0] - 6.5 * (t[start_brake:] - t[start_brake]), 0.0)
        brake[start_brake:] = True
    elif scenario == "cruise":
        speed = rng.uniform(12, 22) + np.cumsum(rng.normal(0, 0.05, n))
    else:  # urban
        speed = np.clip(rng.uniform(2, 8) + np.cumsum(rng.normal(0, 0.08, n)), 0, None)
    speed = np.clip(speed, 0, None)
    distance = np.concatenate([[0.0], np.cumsum(speed[:-1] * dt)])
    heading_rad = np.radians(heading) + 2 * curvature * distance  # road curvature is 2c for X = c Z^2
    north = np.concatenate([[0.0], np.cumsum(speed[:-1] * dt * np.cos(heading_rad[:-1]))])
    east = np.concatenate([[0.0], np.cumsum(speed[:-1] * dt * np.sin(heading_rad[:-1]))])
    lat = start[0] + north / METRES_PER_DEG
    lon = start[1] + east / (METRES_PER_DEG * math.cos(math.radians(start[0])))
    autopilot = np.zeros(n, np.int64)
    if scenario == "cruise" and rng.random() < 0.7:
        autopilot[:] = 2  # AUTOSTEER
        if rng.random() < 0.5:
            autopilot[int(n * rng.uniform(0.3, 0.8)) :] = 0  # disengagement
    blink = np.zeros(n, bool)
    if rng.random() < 0.3:
        blink[int(n * 0.2) : int(n * 0.6)] = True
    left = rng.random() < 0.5
    return Drive(lat, lon, np.degrees(heading_rad) % 360, speed, distance, brake, autopilot,
                 0 if scenario == "sentry" else 1, blink & left, blink & ~left)


def _zone_entry(rng, policy: RegionPolicy, length_m: float) -> tuple[tuple[float, float], float]:
    """A start point and heading so that the drive enters a restricted zone part way through."""
    zone = policy.zones.geometries[int(rng.integers(0, len(policy.zones.geometries)))]
    boundary = zone.exterior if zone.geom_type == "Polygon" else zone.geoms[0].exterior
    edge = boundary.interpolate(float(rng.uniform(0, 1)), normalized=True)
    centre = zone.centroid
    heading = math.degrees(math.atan2((centre.x - edge.x) * math.cos(math.radians(edge.y)), centre.y - edge.y))
    outside = max(length_m, 1.0) * float(rng.uniform(0.3, 0.7))
    start = _offset(edge.y, edge.x, -outside * math.cos(math.radians(heading)), -outside * math.sin(math.radians(heading)))
    return start, heading


def _clear_start(rng, policy: RegionPolicy, length_m: float) -> tuple[tuple[float, float], float]:
    """A start near the region's origin whose whole drive stays out of restricted zones."""
    for _ in range(100):
        heading = float(rng.uniform(0, 360))
        start = _offset(*policy.locale.origin, float(rng.uniform(-4000, 4000)), float(rng.uniform(-4000, 4000)))
        end = _offset(*start, length_m * 1.5 * math.cos(math.radians(heading)), length_m * 1.5 * math.sin(math.radians(heading)))
        line = shapely.LineString([(start[1], start[0]), (end[1], end[0])]).buffer(0.0005)
        if not any(line.intersects(zone) for zone in policy.zones.geometries):
            return start, heading
    raise RuntimeError("could not place a drive outside every restricted zone")


def _write_camera(path: Path, scene: Scene, drive: Drive, config: SimulateParams, with_sei: bool, seq0: int, fragmented: bool) -> list[dict]:
    truth = []
    with open(path, "wb") as handle, VideoWriter(handle, config.width, config.height, config.fps, fragmented=fragmented) as writer:
        for frame in range(len(drive.speed)):
            image, objects, lanes = scene.render(frame / config.fps, float(drive.distance[frame]))
            writer.write(image, sei=sei_nal(drive.telemetry(frame, seq0)) if with_sei else None)
            truth.append({"frame": frame, "pts": frame, "objects": objects, "lanes": lanes})
    return truth


def _corrupt(path: Path, rng) -> None:
    """Garbage over the header, as a broken write leaves it."""
    data = path.read_bytes()
    path.write_bytes(bytes(rng.integers(0, 256, 2048, dtype=np.uint8)) + data[2048:])


def pull_drive(paths: list[Path], rng: np.random.Generator, moment: float | None = None) -> float:
    """Cut every camera file of the minute being recorded at one moment, as a pulled USB drive does.

    Each file keeps what its writer had on the drive by then: the frames encoded so far and a
    random part of the one being written. A car's file never gets its moov, and its mdat size is
    still the placeholder the muxer writes until then (0); a fragmented file is simply cut.
    Returns the moment, as a share of the minute (drawn when not given)."""
    moment = float(rng.uniform(0.05, 0.95)) if moment is None else moment
    for path in paths:
        with av.open(str(path)) as container:  # where each frame's sample lies, in decode order
            samples = [(p.pos, p.size) for p in container.demux(video=0) if p.size]
        position, size = samples[min(int(moment * len(samples)), len(samples) - 1)]
        with open(path, "r+b") as handle:
            boxes = scan(handle)
            handle.truncate(position + int(rng.integers(0, size)))
            if not any(b.kind == "moof" for b in boxes):
                mdat = next(b for b in boxes if b.kind == "mdat")
                handle.seek(mdat.offset)
                handle.write(b"\x00\x00\x00\x00")
    return moment


def _quota(rng: np.random.Generator, n: int, rate: float, exclude: set[int] = frozenset()) -> set[int]:
    """round(rate * n) distinct indices (not in exclude): small fleets still get every fault."""
    candidates = [i for i in rng.permutation(n).tolist() if i not in exclude]
    return set(candidates[: int(round(rate * n))])


def simulate_fleet(out: Path, params: Params, region: str, config: SimulateParams | None = None, progress: bool = True) -> dict:
    """Write a simulated fleet upload for one region into ``out``; returns what was injected."""
    policy = params.region(region)
    config = config or params.simulate
    style = policy.locale.plate_style
    bank = face_bank()
    faces = (bank.crops, bank.boxes)
    camera = Camera(config.width, config.height)
    tz = ZoneInfo(policy.locale.timezone)
    rates = config.rates
    root = np.random.default_rng([config.seed, sum(map(ord, region))])
    others = [p.locale.origin for name, p in params.regions.items() if name != region]
    manifest = {"region": region, "seed": config.seed, "vehicles": {}, "events": []}
    out.mkdir(parents=True, exist_ok=True)
    total = config.vehicles * config.events
    bar = tqdm(total=total, desc=f"simulate {region}", unit="event", disable=not progress)
    no_consent = _quota(root, config.vehicles, rates.no_consent)
    order = root.permutation(total)
    counts = [int(round(r * total)) for r in (rates.sidecar, rates.sentry, rates.recent)]
    layouts = {}
    for index, layout in zip(order, ["sidecar"] * counts[0] + ["sentry"] * counts[1] + ["recent"] * counts[2]):
        layouts[int(index)] = layout
    faults = {name: _quota(root, total, getattr(rates, name)) for name in
              ("wrong_region", "missing_event_json", "malformed_event_json", "duplicate", "hard_brake")}
    # Zone crossings need a drive inside the region, and a parked car crosses nothing.
    parked = {i for i, layout in layouts.items() if layout == "sentry"}
    faults["zone_crossing"] = _quota(root, total, rates.zone_crossing, faults["wrong_region"] | parked)
    pulled = _quota(root, total, rates.truncated)
    corrupt = _quota(root, total * len(config.cameras), rates.corrupt)
    for v in range(config.vehicles):
        vrng = np.random.default_rng([config.seed, sum(map(ord, region)), v])
        vin = _vin(style, vrng)
        consent = v not in no_consent
        manifest["vehicles"][vin] = {"consent": consent}
        (out / vin).mkdir(exist_ok=True)
        (out / vin / "consent.json").write_text(json.dumps({"vin": vin, "exterior_recording_consent": consent,
                                                             "recorded_at": "2026-01-15T09:00:00Z"}, indent=1))
        day = datetime(2026, 6, 1, 7, 0, tzinfo=tz) + timedelta(days=int(root.integers(0, 90)))
        for e in range(config.events):
            rng = np.random.default_rng([config.seed, sum(map(ord, region)), v, e])
            local = day + timedelta(minutes=int(e * 37 + rng.integers(0, 30)), seconds=int(rng.integers(0, 60)))
            stamp = local.strftime("%Y-%m-%d_%H-%M-%S")
            index = v * config.events + e
            layout = layouts.get(index, "saved")
            scenario = "sentry" if layout == "sentry" else "hard_brake" if index in faults["hard_brake"] else str(rng.choice(["urban", "cruise"]))
            drive_seed = int(rng.integers(2**31))
            # The speed profile fixes how far the car goes; the start is placed knowing that.
            length = float(_drive(np.random.default_rng(drive_seed), config, (0.0, 0.0), 0.0, 0.0, scenario).distance[-1])
            fault = {"zone": index in faults["zone_crossing"], "wrong_region": index in faults["wrong_region"]}
            curvature = float(rng.uniform(-1e-3, 1e-3))
            if fault["wrong_region"]:
                fault["zone"] = False
                lat, lon = others[int(rng.integers(0, len(others)))] if others else (policy.locale.origin[0] + 30, policy.locale.origin[1])
                start, heading = _offset(lat, lon, *rng.uniform(-2000, 2000, 2)), float(rng.uniform(0, 360))
            elif fault["zone"] and scenario != "sentry":
                (start, heading), curvature = _zone_entry(rng, policy, length), 0.0
            else:
                fault["zone"] = False
                start, heading = _clear_start(rng, policy, length)
            drive = _drive(np.random.default_rng(drive_seed), config, start, heading, curvature, scenario)
            if layout == "sidecar":
                folder = out / vin / "clips"
            elif layout == "recent":
                folder = out / vin / "TeslaCam" / "RecentClips" / (local.strftime("%Y-%m-%d") if rng.random() < 0.5 else "")
            else:
                folder = out / vin / "TeslaCam" / ("SentryClips" if layout == "sentry" else "SavedClips") / stamp
            folder.mkdir(parents=True, exist_ok=True)
            event = {"vehicle": vin, "folder": str(folder.relative_to(out)), "stamp": stamp, "layout": layout, "scenario": scenario,
                     "cameras": {}, **fault}
            truth_lines = []
            seq0 = int(rng.integers(0, 1_000_000))
            for c, name in enumerate(config.cameras):
                scene = Scene.random(np.random.default_rng([config.seed, v, e, c, 7]), camera, style, faces,
                                     direction=-1 if name == "back" else 1, route_m=float(drive.distance[-1]) + 5,
                                     curvature=curvature, pedestrians=config.pedestrians, vehicles=config.vehicles_in_scene,
                                     # At speed nobody stands a metre from the car: large faces need a slow car.
                                     max_face_px=160.0 if float(drive.speed.mean()) < 9 else 48.0)
                path = folder / f"{stamp}-{name}.mp4"
                for frame in _write_camera(path, scene, drive, config, with_sei=layout in ("saved", "recent"), seq0=seq0,
                                           fragmented=layout == "sidecar"):
                    truth_lines.append(json.dumps({"camera": name, **frame}, separators=(",", ":")))
                damage = "truncated" if index in pulled else "corrupt" if index * len(config.cameras) + c in corrupt else None
                if damage == "corrupt":
                    _corrupt(path, rng)
                event["cameras"][name] = {"file": str(path.relative_to(out)), "damage": damage}
            if index in pulled:  # a separate generator: the other faults stay where they were
                moment = pull_drive([out / camera["file"] for camera in event["cameras"].values()],
                                     np.random.default_rng([config.seed, sum(map(ord, region)), v, e, 11]))
                event["pulled_at_s"] = round(moment * config.seconds, 3)
            (folder / (f"{stamp}-groundtruth.jsonl" if layout in ("recent", "sidecar") else "groundtruth.jsonl")).write_text("\n".join(truth_lines) + "\n")
            event["event_json"] = None
            if layout in ("saved", "sentry"):
                document = {"timestamp": local.strftime("%Y-%m-%dT%H:%M:%S"), "city": policy.locale.city,
                            "est_lat": f"{drive.lat[0]:.4f}", "est_lon": f"{drive.lon[0]:.4f}",
                            "reason": "sentry_aware_object_detection" if layout == "sentry" else str(rng.choice(REASONS)), "camera": "0"}
                if index in faults["missing_event_json"]:
                    event["event_json"] = "missing"
                elif index in faults["malformed_event_json"]:
                    event["event_json"] = "malformed"
                    text = json.dumps(document)
                    (folder / "event.json").write_text(text[: len(text) // 2] if rng.random() < 0.5 else text.replace(document["est_lat"], "north"))
                else:
                    (folder / "event.json").write_text(json.dumps(document, indent=1))
            if layout == "sidecar":
                for name in config.cameras:
                    step = max(1, int(config.fps))
                    sidecar = {"vehicle_id": vin, "region": region, "camera": name,
                               "start_time": local.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                               "trigger": "manual", "consent": consent,
                               "track": [{"t": round(i / config.fps, 3), "lat": round(float(drive.lat[i]), 7), "lon": round(float(drive.lon[i]), 7),
                                          "speed_mps": round(float(drive.speed[i]), 2)} for i in range(0, len(drive.speed), step)]}
                    (folder / f"{stamp}-{name}.json").write_text(json.dumps(sidecar, indent=1))
            if layout == "saved" and index in faults["duplicate"]:
                again = out / vin / "TeslaCam" / "RecentClips" / local.strftime("%Y-%m-%d")
                again.mkdir(parents=True, exist_ok=True)
                first = next(iter(event["cameras"].values()))["file"]
                shutil.copyfile(out / first, again / Path(first).name)
                event["duplicate_of"] = first
                event["duplicate"] = str((again / Path(first).name).relative_to(out))
            manifest["events"].append(event)
            bar.update()
    bar.close()
    (out / "simulation.json").write_text(json.dumps(manifest, indent=1))
    return manifest
