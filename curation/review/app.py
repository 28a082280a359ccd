"""The labelers' review app for one region: FastAPI, plain HTML and JS, redacted media only.

Serves one region. Media come from ``redacted/<clip>.mp4`` of clips whose redaction was verified,
through the region's store guard: a clip id is 64 hex digits or nothing, so no URL names another
file; a link or a file with a second name in ``redacted/`` is refused like any other crossing, and
the bytes are served (in ranges, streamed) from the very descriptor the guard checked. A file is
hashed against its verified sha256 once per version (device, inode, size, times), not per request.
Every decision goes to the ``reviews`` table and the audit log; curate and redact act on them.

    curation review serve --region cn --port 8080

Example:
    >>> app = create_app(params, "cn")    # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from curation.datasets.frames import hidden_clips
from curation.errors import ResidencyViolation
from curation.review.auth import Tokens, User
from curation.storage.catalog import Catalog
from curation.storage.records import Review, to_table
from curation.storage.store import RegionStore

__all__ = ["create_app"]

STATIC = Path(__file__).parent / "static"
CLIP_ID = re.compile(r"^[0-9a-f]{64}$")
COOKIE = "curation_token"
DECISIONS = {  # target -> decisions, and the least role that may take them
    "detection": ({"accept", "reject", "fix"}, "labeler"),
    "redaction": ({"missed_face", "missed_plate"}, "labeler"),
    "clip": ({"accept", "reject"}, "reviewer"),
}
LOW_CONFIDENCE = 0.5
CHUNK = 1 << 18


class Login(BaseModel):
    token: str


class Decision(BaseModel):
    clip_id: str
    index: int | None = None
    target: str
    target_id: str | None = None
    decision: str
    after: dict = Field(default_factory=dict)


def create_app(params, region: str, actor_prefix: str = "review") -> FastAPI:
    store = RegionStore(params, region, actor=f"{actor_prefix}-server")
    catalog, tokens = Catalog(store), Tokens(store)
    classes = list(params.label.taxonomy)
    hashed: dict[str, tuple] = {}  # clip id -> version of the file whose sha256 matched the verified one
    hashing = threading.Lock()
    app = FastAPI(title=f"curation review ({region})", docs_url=None, redoc_url=None)

    def refuse(request: Request, status: int, why: str, token: str | None = None) -> HTTPException:
        store.audit.append(f"{actor_prefix}:anonymous", "review_refused", str(request.url.path), None, status=status, why=why,
                           token_region=Tokens.region_of(token), client=request.client.host if request.client else None)
        return HTTPException(status, why)

    def user(request: Request) -> User:
        header = request.headers.get("authorization", "")
        token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else request.cookies.get(COOKIE)
        found = tokens.check(token)
        if found is None:
            claimed = Tokens.region_of(token)
            why = f"token of region {claimed!r}, this is {region!r}" if claimed and claimed != region else "sign in with a token of this region"
            raise refuse(request, 401, why, token)
        return found

    def role(least: str):
        def check(request: Request, who: User = Depends(user)) -> User:
            if not who.may(least):
                raise refuse(request, 403, f"{who.name} is {who.role}; this needs {least}")
            return who
        return check

    def clip_row(request: Request, clip_id: str) -> dict:
        if not CLIP_ID.match(clip_id):
            raise refuse(request, 404, "no such clip")
        rows = catalog.read("redacted_clips", where=f"clip_id = '{clip_id}' AND status = 'verified'").to_pylist()
        if not rows:
            raise HTTPException(404, "no verified redaction for this clip")
        return rows[0]

    @app.get("/", include_in_schema=False)
    def index():
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.post("/api/login")
    def login(body: Login, request: Request, response: Response):
        found = tokens.check(body.token)
        if found is None:
            claimed = Tokens.region_of(body.token)
            why = f"token of region {claimed!r}, this is {region!r}" if claimed and claimed != region else "unknown token"
            raise refuse(request, 401, why, body.token)
        response.set_cookie(COOKIE, body.token, httponly=True, samesite="strict")
        store.audit.append(found.name, "review_login", "review", None, role=found.role)
        return {"user": found.name, "role": found.role, "region": region}

    @app.get("/api/me")
    def me(who: User = Depends(user)):
        return {"user": who.name, "role": who.role, "region": region, "classes": classes,
                "taxonomy": params.label.taxonomy}

    @app.get("/api/queue")
    def queue(page: int = Query(0, ge=0), size: int = Query(50, ge=1, le=500), scenario: str | None = None,
              camera: str | None = None, who: User = Depends(user)):
        table = full = _queue(catalog)
        if camera:
            table = table[table.camera == camera]
        if scenario:
            table = table[table.scenarios.map(lambda s: scenario in s)]
        rows = table.iloc[page * size : (page + 1) * size]
        return {"total": len(table), "page": page, "size": size, "clips": json.loads(rows.to_json(orient="records")),
                "cameras": sorted(full.camera.unique().tolist()), "scenarios": sorted({s for ss in full.scenarios for s in ss})}

    @app.get("/api/clips/{clip_id}")
    def clip(clip_id: str, request: Request, who: User = Depends(user)):
        redacted = clip_row(request, clip_id)
        info = catalog.read("clips", ["camera", "fps", "frames", "width", "height", "start_time"], f"clip_id = '{clip_id}'").to_pylist()[0]
        frames = catalog.read("frames", ["index", "time"], f"clip_id = '{clip_id}'").to_pandas().sort_values("index")
        seconds = (frames.time - frames.time.iloc[0]).dt.total_seconds().round(4).tolist() if len(frames) else []
        labeled = catalog.read("labeled_clips", ["sampled_indices"], f"clip_id = '{clip_id}'").to_pylist()
        return {"clip_id": clip_id, "camera": info["camera"], "fps": info["fps"], "frames": redacted["frames"], "width": info["width"],
                "height": info["height"], "seconds": seconds, "labeled": json.loads(labeled[0]["sampled_indices"]) if labeled else [],
                "hidden": clip_id in hidden_clips(catalog)}

    @app.get("/api/clips/{clip_id}/labels")
    def labels(clip_id: str, request: Request, first: int = Query(0, ge=0), last: int = Query(99, ge=0), who: User = Depends(user)):
        clip_row(request, clip_id)
        if last - first > 1000:
            raise HTTPException(400, "ask for at most 1000 frames at a time")
        window = f"clip_id = '{clip_id}' AND index >= {first} AND index <= {last}"
        detections = catalog.read("detections", ["detection_id", "index", "label", "attrs", "x1", "y1", "x2", "y2", "confidence", "track"],
                                  window).to_pandas()
        lanes = catalog.read("lane_lines", ["index", "lane", "type", "color", "xs", "ys"], window).to_pandas()
        reviews = catalog.read("reviews", ["review_id", "index", "target", "target_id", "decision", "after", "reviewer", "at"],
                               f"clip_id = '{clip_id}'").to_pandas()
        return {"first": first, "last": last,
                "detections": json.loads(detections.to_json(orient="records")),
                "lanes": [{**row, "xs": json.loads(row["xs"]), "ys": json.loads(row["ys"])} for row in lanes.to_dict("records")],
                "reviews": json.loads(reviews.to_json(orient="records", date_format="iso"))}

    @app.get("/media/{clip_id}")
    def media(clip_id: str, request: Request, who: User = Depends(user)):
        redacted = clip_row(request, clip_id)
        try:
            handle = store.open(f"redacted/{clip_id}.mp4", "rb")  # the guard's checked descriptor
        except ResidencyViolation as error:
            raise refuse(request, 403, str(error)) from None
        except FileNotFoundError:
            raise HTTPException(404, "redacted file missing") from None
        try:
            size, version = _version(handle)
            version = (*version, redacted["output_sha256"])
            if redacted["output_sha256"] and hashed.get(clip_id) != version:
                with hashing:
                    if _sha256(handle, size) != redacted["output_sha256"]:
                        raise refuse(request, 409, "redacted file differs from its verified hash")
                    hashed[clip_id] = version
            status, start, end, headers = _ranged(size, request.headers.get("range"))
        except BaseException:
            handle.close()
            raise
        if status == 416:
            handle.close()
            return Response(status_code=416, headers=headers)
        return StreamingResponse(_stream(handle, start, end), status_code=status, media_type="video/mp4", headers=headers)

    @app.post("/api/reviews")
    def decide(body: Decision, request: Request, who: User = Depends(user)):
        allowed, least = DECISIONS.get(body.target, (set(), "admin"))
        if body.decision not in allowed:
            raise HTTPException(422, f"target {body.target!r} takes {sorted(allowed) or 'nothing'}, not {body.decision!r}")
        if not who.may(least):
            raise refuse(request, 403, f"{who.name} is {who.role}; {body.target} decisions need {least}")
        clip_row(request, body.clip_id)
        before = {}
        if body.target == "detection":
            found = catalog.read("detections", where=f"detection_id = '{_quote(body.target_id or '')}'").to_pylist()
            if not found or found[0]["clip_id"] != body.clip_id:
                raise HTTPException(404, "no such detection in this clip")
            before = {k: found[0][k] for k in ("label", "attrs", "x1", "y1", "x2", "y2", "confidence")}
            body.index = found[0]["index"]
            if body.decision == "fix":
                _check_fix(body.after, classes, params.label.taxonomy)
        if body.target == "redaction":
            box = body.after.get("box")
            if body.index is None or not (isinstance(box, list) and len(box) == 4 and box[2] > box[0] and box[3] > box[1]):
                raise HTTPException(422, "a missed face or plate needs the frame index and a box [x1, y1, x2, y2]")
        review = Review(uuid.uuid4().hex, body.clip_id, body.index, body.target, body.target_id, body.decision, json.dumps(before),
                        json.dumps(body.after), who.name, who.role, datetime.now(timezone.utc), False)
        catalog.table("reviews").add(to_table(Review, [review]))
        store.audit.append(who.name, f"review_{body.decision}", f"clip:{body.clip_id}", None, target=body.target,
                           target_id=body.target_id, index=body.index, review_id=review.review_id, after=body.after)
        hidden = body.clip_id in hidden_clips(catalog)
        return {"review_id": review.review_id, "hidden_from_export": hidden}

    @app.get("/api/reviews")
    def all_reviews(who: User = Depends(role("admin"))):
        return JSONResponse(json.loads(catalog.read("reviews").to_pandas().to_json(orient="records", date_format="iso")))

    return app


def _quote(text: str) -> str:
    return text.replace("'", "''")


def _version(handle) -> tuple[int, tuple]:
    """(size, what changes whenever the file's bytes may have): device, inode, size, times; ETag on S3."""
    try:
        info = os.fstat(handle.fileno())
    except (AttributeError, OSError, ValueError):
        details = getattr(handle, "details", {}) or {}
        return handle.size, (handle.size, details.get("ETag"), str(details.get("LastModified")))
    return info.st_size, (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def _sha256(handle, size: int) -> str:
    """Streamed from the open file, in constant memory."""
    digest, remaining = hashlib.sha256(), size
    handle.seek(0)
    while remaining > 0 and (chunk := handle.read(min(CHUNK, remaining))):
        digest.update(chunk)
        remaining -= len(chunk)
    return digest.hexdigest()


def _stream(handle, start: int, end: int):
    """Bytes start..end (inclusive) of an open file, a chunk at a time; closes it when done or abandoned."""
    try:
        handle.seek(start)
        remaining = end + 1 - start
        while remaining > 0 and (chunk := handle.read(min(CHUNK, remaining))):
            yield chunk
            remaining -= len(chunk)
    finally:
        handle.close()


def _check_fix(after: dict, classes: list[str], taxonomy: dict) -> None:
    label = after.get("label")
    if label is not None and label not in classes:
        raise HTTPException(422, f"label must be one of {classes}")
    box = after.get("box")
    if box is not None and not (isinstance(box, list) and len(box) == 4 and box[2] > box[0] and box[3] > box[1]):
        raise HTTPException(422, "box must be [x1, y1, x2, y2] with x2 > x1 and y2 > y1")
    if box is not None:
        after.update(dict(zip(("x1", "y1", "x2", "y2"), box)))
    for name, value in (after.get("attrs") or {}).items():
        allowed = taxonomy.get(label or "", {}).get(name)
        if allowed is not None and value not in allowed:
            raise HTTPException(422, f"{name} must be one of {allowed}")


def _ranged(size: int, header: str | None) -> tuple[int, int, int, dict]:
    """(status, first byte, last byte, headers) of a request for a file of ``size`` bytes.

    Byte ranges let the browser seek in long clips without fetching them whole; a header this
    does not understand (several ranges, other units) gets the whole file, as RFC 9110 allows."""
    whole = (200, 0, size - 1, {"Accept-Ranges": "bytes", "Content-Length": str(size)})
    match = re.fullmatch(r"bytes=(\d*)-(\d*)", (header or "").strip())
    if not match or (not match.group(1) and not match.group(2)):
        return whole
    first, last = match.group(1), match.group(2)
    if first:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    else:
        start, end = max(0, size - int(last)), size - 1
        if int(last) == 0:
            start = size
    if start >= size or start > end:
        return 416, 0, -1, {"Content-Range": f"bytes */{size}"}
    return 206, start, end, {"Content-Range": f"bytes {start}-{end}/{size}", "Accept-Ranges": "bytes", "Content-Length": str(end + 1 - start)}


def _queue(catalog: Catalog) -> pd.DataFrame:
    """Clips that need a person first: low-confidence labels, objects the tracker saw only once,
    pending manual redactions; clips already decided go last."""
    verified = catalog.read("redacted_clips", ["clip_id", "frames"], "status = 'verified'").to_pandas()
    clips = catalog.read("clips", ["clip_id", "camera", "duration_s", "start_time"]).to_pandas()
    table = verified.merge(clips, on="clip_id")
    detections = catalog.read("detections", ["clip_id", "confidence"]).to_pandas()
    tracks = catalog.read("tracks", ["clip_id", "detections"]).to_pandas()
    reviews = catalog.read("reviews", ["clip_id", "target", "decision", "applied"]).to_pandas()
    curated = catalog.read("curated", ["clip_id", "scenario"]).to_pandas()
    low = detections[detections.confidence < LOW_CONFIDENCE].groupby("clip_id").size()
    once = tracks[tracks.detections == 1].groupby("clip_id").size()
    pending = reviews[reviews.decision.isin(["missed_face", "missed_plate"]) & ~reviews.applied.astype(bool)].groupby("clip_id").size() \
        if len(reviews) else pd.Series(dtype=int)
    decided = set(reviews[reviews.target == "clip"].clip_id) if len(reviews) else set()
    table["low_confidence"] = table.clip_id.map(low).fillna(0).astype(int)
    table["seen_once"] = table.clip_id.map(once).fillna(0).astype(int)
    table["pending_redactions"] = table.clip_id.map(pending).fillna(0).astype(int)
    table["decided"] = table.clip_id.isin(decided)
    table["priority"] = table.low_confidence + table.seen_once + 5 * table.pending_redactions
    scenarios = curated.groupby("clip_id").scenario.agg(lambda s: sorted(set(s))) if len(curated) else pd.Series(dtype=object)
    table["scenarios"] = table.clip_id.map(scenarios).map(lambda s: s if isinstance(s, list) else [])
    table["start_time"] = table.start_time.astype(str)
    return table.sort_values(["decided", "priority", "clip_id"], ascending=[True, False, True]).reset_index(drop=True)
