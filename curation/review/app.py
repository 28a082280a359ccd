"""The labelers' review app for one region: FastAPI, plain HTML and JS, redacted media only.

Serves one region. Media come from ``redacted/<clip>.mp4`` of clips whose redaction was verified,
through the region's store guard: a clip id is 64 hex digits or nothing, so no URL names another
file, and a link in ``redacted/`` that leaves the region is refused like any other crossing.
Every decision goes to the ``reviews`` table and the audit log; curate and redact act on them.

    curation review serve --region cn --port 8080

Example:
    >>> app = create_app(params, "cn")    # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import FileResponse, JSONResponse
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
            data = store.read_bytes(f"redacted/{clip_id}.mp4")
        except ResidencyViolation as error:
            raise refuse(request, 403, str(error)) from None
        if redacted["output_sha256"] and _sha256(data) != redacted["output_sha256"]:
            raise refuse(request, 409, "redacted file differs from its verified hash")
        return _ranged(data, request.headers.get("range"))

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


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


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


def _ranged(data: bytes, header: str | None) -> Response:
    """Byte ranges, so the browser can seek in long clips without fetching them whole."""
    size = len(data)
    match = re.match(r"bytes=(\d*)-(\d*)$", header or "")
    if not match or (not match.group(1) and not match.group(2)):
        return Response(data, media_type="video/mp4", headers={"Accept-Ranges": "bytes"})
    start = int(match.group(1)) if match.group(1) else max(0, size - int(match.group(2)))
    end = min(int(match.group(2)), size - 1) if match.group(1) and match.group(2) else size - 1
    if start >= size or start > end:
        return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
    return Response(data[start : end + 1], status_code=206, media_type="video/mp4",
                    headers={"Content-Range": f"bytes {start}-{end}/{size}", "Accept-Ranges": "bytes"})


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
