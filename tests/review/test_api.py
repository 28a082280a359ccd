"""Review API: sign-in, roles, residency of media, every decision type, and what decisions change."""

import json
import os

import pytest
from fastapi.testclient import TestClient

from curation.datasets.frames import hidden_clips, reviewed_detections
from curation.redaction.stage import redact_region
from curation.review.app import create_app
from curation.storage.catalog import Catalog
from curation.storage.store import RegionStore


def _client(params, token=None):
    client = TestClient(create_app(params, "cn"))
    if token:
        client.headers["Authorization"] = f"Bearer {token}"
    return client


def _audit(params):
    store = RegionStore(params, "cn")
    return [json.loads(line) for line in store.read_text("audit/log.jsonl").splitlines()]


def _first_clip(client):
    queue = client.get("/api/queue").json()
    assert queue["total"] > 0
    return queue["clips"][0]["clip_id"]


def test_no_token_or_another_regions_token_is_refused_and_audited(region):
    root, params, tokens = region
    anonymous = _client(params)
    assert anonymous.get("/api/queue").status_code == 401
    assert anonymous.post("/api/login", json={"token": tokens["eu"]}).status_code == 401
    eu = _client(params, tokens["eu"])
    response = eu.get("/api/queue")
    assert response.status_code == 401 and "region 'eu'" in response.json()["detail"]
    refused = [r for r in _audit(params) if r["action"] == "review_refused"]
    assert len(refused) >= 3 and any(r["detail"].get("token_region") == "eu" for r in refused)
    login = anonymous.post("/api/login", json={"token": tokens["labeler"]})
    assert login.status_code == 200 and login.json()["role"] == "labeler"
    assert anonymous.get("/api/me").json()["user"] == "labeler-1"  # the cookie signs the browser in


def test_roles_limit_clip_decisions_and_the_decision_log(region):
    _, params, tokens = region
    labeler, reviewer, admin = (_client(params, tokens[r]) for r in ("labeler", "reviewer", "admin"))
    clip_id = _first_clip(labeler)
    assert labeler.post("/api/reviews", json={"clip_id": clip_id, "target": "clip", "decision": "reject"}).status_code == 403
    assert reviewer.post("/api/reviews", json={"clip_id": clip_id, "target": "clip", "decision": "reject"}).status_code == 200
    assert reviewer.get("/api/reviews").status_code == 403
    decisions = admin.get("/api/reviews").json()
    assert [d["decision"] for d in decisions] == ["reject"] and decisions[0]["reviewer"] == "reviewer-1"
    assert clip_id in hidden_clips(Catalog(RegionStore(params, "cn")))  # a rejected clip leaves the training set


def test_media_comes_from_verified_redacted_output_only(region):
    root, params, tokens = region
    client = _client(params, tokens["labeler"])
    clip_id = _first_clip(client)
    catalog = Catalog(RegionStore(params, "cn"))
    verified = catalog.read("redacted_clips", where=f"clip_id = '{clip_id}'").to_pylist()[0]
    whole = client.get(f"/media/{clip_id}")
    assert whole.status_code == 200 and whole.headers["content-type"] == "video/mp4"
    import hashlib

    assert hashlib.sha256(whole.content).hexdigest() == verified["output_sha256"]
    part = client.get(f"/media/{clip_id}", headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and len(part.content) == 100 and part.headers["content-range"].endswith(f"/{len(whole.content)}")
    # Raw files, other paths, encoded slashes and traversal never resolve.
    raw = catalog.read("clips", ["clip_id", "source_uri"]).to_pylist()
    unverified = {r["clip_id"] for r in raw} - {r["clip_id"] for r in catalog.read("redacted_clips", where="status = 'verified'").to_pylist()}
    for path in ["/media/..%2F..%2Fparams.yaml", "/media/%2e%2e/raw", "/media/" + clip_id.upper(), "/media/" + clip_id + ".mp4",
                 *(f"/media/{c}" for c in unverified), "/static/../params.yaml", "/static/..%2F..%2Fparams.yaml"]:
        assert client.get(path).status_code == 404, path
    # A link planted in redacted/ that leads into another region is refused by the store guard.
    target = root / "data" / "eu" / "secret.mp4"
    target.write_bytes(b"eu footage")
    planted = root / "data" / "cn" / "redacted" / f"{clip_id}.mp4"
    planted.unlink()
    os.symlink(target, planted)
    assert client.get(f"/media/{clip_id}").status_code == 403
    assert any(r["action"] == "refused" for r in _audit(params))


def test_every_decision_type_is_recorded_and_changes_what_curate_sees(region):
    _, params, tokens = region
    client = _client(params, tokens["labeler"])
    catalog = Catalog(RegionStore(params, "cn"))
    detections = catalog.read("detections").to_pylist()
    assert len(detections) >= 3, "the built region should have labels"
    first, second, third = detections[:3]
    clip_id = first["clip_id"]
    post = lambda body: client.post("/api/reviews", json={"clip_id": body.pop("clip_id", clip_id), **body})  # noqa: E731
    assert post({"clip_id": first["clip_id"], "target": "detection", "target_id": first["detection_id"], "decision": "accept"}).status_code == 200
    assert post({"clip_id": second["clip_id"], "target": "detection", "target_id": second["detection_id"], "decision": "reject"}).status_code == 200
    fix = {"clip_id": third["clip_id"], "target": "detection", "target_id": third["detection_id"], "decision": "fix",
           "after": {"label": "traffic_sign", "attrs": {"sign": "stop"}, "box": [10, 10, 60, 60]}}
    assert post(fix).status_code == 200
    assert post({**fix, "after": {"label": "unicorn"}}).status_code == 422
    assert post({"target": "detection", "target_id": "nope", "decision": "accept"}).status_code == 404
    assert post({"target": "redaction", "decision": "missed_face", "index": 3}).status_code == 422  # no box
    drawn = post({"target": "redaction", "decision": "missed_face", "index": 3, "after": {"box": [100, 80, 140, 130]}})
    assert drawn.status_code == 200 and drawn.json()["hidden_from_export"]
    assert post({"target": "redaction", "decision": "missed_plate", "index": 4, "after": {"box": [200, 200, 260, 220]}}).status_code == 200

    reviewed = reviewed_detections(catalog).set_index("detection_id")
    assert second["detection_id"] not in reviewed.index
    fixed = reviewed.loc[third["detection_id"]]
    assert (fixed["label"], json.loads(fixed["attrs"]), fixed["x2"], fixed["confidence"]) == ("traffic_sign", {"sign": "stop"}, 60, 1.0)
    assert clip_id in hidden_clips(catalog)
    actions = {r["action"] for r in _audit(params)}
    assert {"review_accept", "review_reject", "review_fix", "review_missed_face", "review_missed_plate"} <= actions

    # The next redact@R masks the drawn boxes (raw is gone in cn: on the redacted output) and releases the clip.
    before = catalog.read("redacted_clips", where=f"clip_id = '{clip_id}'").to_pylist()[0]
    redact_region(RegionStore(params, "cn", actor="test"), params, progress=False)
    after = catalog.read("redacted_clips", where=f"clip_id = '{clip_id}'").to_pylist()[0]
    assert after["output_sha256"] != before["output_sha256"] and after["status"] == "verified"
    boxes = json.loads(catalog.read("redactions", ["boxes"], f"clip_id = '{clip_id}' AND index = 3").to_pylist()[0]["boxes"])
    assert any(b[4] == "face" and b[0] <= 100 and b[2] >= 140 for b in boxes)
    assert clip_id not in hidden_clips(catalog)


def test_queue_pages_and_filters(region):
    _, params, tokens = region
    client = _client(params, tokens["labeler"])
    everything = client.get("/api/queue?size=500").json()
    page = client.get("/api/queue?size=1&page=1").json()
    assert page["total"] == everything["total"] and len(page["clips"]) == min(1, max(0, everything["total"] - 1))
    assert client.get("/api/queue?camera=nope").json()["total"] == 0
    priorities = [c["priority"] for c in everything["clips"]]
    assert priorities == sorted(priorities, reverse=True)


def _verified_media(root, params, client):
    clip_id = _first_clip(client)
    return clip_id, root / "data" / "cn" / "redacted" / f"{clip_id}.mp4"


def test_media_refuses_a_hard_link_and_a_swapped_folder_under_redacted(region):
    root, params, tokens = region
    client = _client(params, tokens["labeler"])
    clip_id, media = _verified_media(root, params, client)
    original = media.read_bytes()
    assert client.get(f"/media/{clip_id}").status_code == 200
    # eu holds a copy of the very bytes (so the hash would match): a second name still leads there.
    eu_copy = root / "data" / "eu" / "redacted" / f"{clip_id}.mp4"
    eu_copy.parent.mkdir(parents=True, exist_ok=True)
    eu_copy.write_bytes(original)
    media.unlink()
    os.link(eu_copy, media)
    assert client.get(f"/media/{clip_id}").status_code == 403
    media.unlink()
    # The whole folder swapped for a link into eu's.
    folder = media.parent
    os.rename(folder, folder.with_name("redacted.parked"))
    os.symlink(eu_copy.parent, folder)
    assert client.get(f"/media/{clip_id}").status_code == 403
    refused = [r for r in _audit(params) if r["action"] == "refused"]
    assert any("hard link" in r["detail"]["reached"] for r in refused) and any("region 'eu'" in r["detail"]["reached"] for r in refused)
    os.unlink(folder)
    os.rename(folder.with_name("redacted.parked"), folder)
    media.write_bytes(original)
    assert client.get(f"/media/{clip_id}").status_code == 200


def test_media_ranges(region):
    root, params, tokens = region
    client = _client(params, tokens["labeler"])
    clip_id, media = _verified_media(root, params, client)
    data = media.read_bytes()
    size = len(data)
    for header, status, body in [("bytes=0-99", 206, data[:100]), ("bytes=100-", 206, data[100:]), ("bytes=-10", 206, data[-10:]),
                                 (f"bytes=5-{size + 100}", 206, data[5:]), ("bytes=0-0", 206, data[:1]), ("bytes=0-1,5-6", 200, data),
                                 ("items=0-5", 200, data), (None, 200, data)]:
        response = client.get(f"/media/{clip_id}", headers={"Range": header} if header else {})
        assert response.status_code == status and response.content == body, header
        assert int(response.headers["content-length"]) == len(body)
    for header in (f"bytes={size}-", "bytes=-0", "bytes=9-3"):
        response = client.get(f"/media/{clip_id}", headers={"Range": header})
        assert response.status_code == 416 and response.headers["content-range"] == f"bytes */{size}", header


def _read_bytes_so_far() -> int:
    return int(next(line for line in open("/proc/self/io") if line.startswith("rchar:")).split()[1])


def test_media_streams_a_large_file_hashed_once_per_version(region):
    import hashlib
    import tracemalloc

    root, params, tokens = region
    client = _client(params, tokens["labeler"])
    clip_id, media = _verified_media(root, params, client)
    big = media.read_bytes() + bytes(48 << 20)  # 48 MB: the old endpoint read and hashed all of it per request
    media.write_bytes(big)
    catalog = Catalog(RegionStore(params, "cn"))
    catalog.table("redacted_clips").update(where=f"clip_id = '{clip_id}'", values={"output_sha256": hashlib.sha256(big).hexdigest()})
    client = _client(params, tokens["labeler"])  # a server started after the update
    tracemalloc.start()
    first = client.get(f"/media/{clip_id}", headers={"Range": "bytes=0-99"})
    _, hashing_peak = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    before = _read_bytes_so_far()
    again = client.get(f"/media/{clip_id}", headers={"Range": f"bytes={len(big) - 100}-"})
    read = _read_bytes_so_far() - before
    _, serving_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert first.status_code == again.status_code == 206 and first.content == big[:100] and again.content == big[-100:]
    assert hashing_peak < 8 << 20 and serving_peak < 4 << 20, (hashing_peak, serving_peak)
    assert read < 4 << 20, read  # the verified version is not read or hashed again
    # Changed in place (same size): a new version, hashed again, and refused.
    with open(media, "r+b") as handle:
        handle.seek(len(big) // 2)
        handle.write(b"tampered")
    assert client.get(f"/media/{clip_id}", headers={"Range": "bytes=0-99"}).status_code == 409
