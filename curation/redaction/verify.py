"""Proof: detectors that did not do the redaction look at every frame of the output; anything they
still find at or above the policy's minimum sizes fails the clip, and so does an output that
decodes to fewer frames than the clip has (frames nobody looked at prove nothing).

The output is read as a stream, a batch of frames at a time. After a repair, a frame whose decoded
pixels and masked boxes are identical to the previous round's, where that round found nothing, is
not run through the verifiers again: the detectors are deterministic, so their answer is the same
(x264 re-encodes the groups of pictures without a new mask bit for bit).

Example:
    >>> verification = verify_video("redacted.mp4", verifiers, {0: 32, 1: 16}, expected=120)   # doctest: +SKIP
    >>> verification.passed
    True
"""

from __future__ import annotations

from dataclasses import dataclass, field

import hashlib

import numpy as np

from curation.perception.boxes import CLASSES, Detections
from curation.redaction.masks import mask_of
from curation.redaction.video import RedactionConfig, RedactionResult, add_boxes, encode, phase, redact_video, stream_frames

__all__ = ["Verification", "verify_video", "verify_frames", "redact_verified", "repaired", "needs_repair"]

BATCH = 4
# Repairs go on while no round finds more than the one before: a repair mask can itself look like
# a face to the verifier (a blurred ellipse beside a flower pot did, on real footage), and a
# re-encoded frame can tip a borderline false face over the threshold (a 2896x1876 parking lot:
# 408, 164, 16, 0 findings in 5 s; 37 were left after three repairs in its minute). As many as
# before is progress too: a finding under a mask is not one, so these are new places (127, 18, 2,
# 2 on a 2 s pan of that lot: a tree masked on one frame, then on its neighbours). Each round
# looks only at the frames that changed, so a round costs what its findings do.
MAX_REPAIRS = 8


@dataclass
class Verification:
    """What the verifiers saw on an output: frames decoded (of ``expected``) and findings."""

    frames: int
    expected: int | None
    findings: list[dict] = field(default_factory=list)
    reused: int = 0  # frames identical to the previous round's, whose clean result stands
    digests: list[bytes] = field(default_factory=list, repr=False)  # per decoded frame, to recognise it in the next round

    @property
    def complete(self) -> bool:
        return self.expected is None or self.frames == self.expected

    @property
    def passed(self) -> bool:
        return self.complete and not self.findings and self.frames > 0

    def summary(self) -> str:
        if self.passed:
            return f"passed: {self.frames} frames, nothing found"
        if not self.complete:
            return f"FAILED: decoded {self.frames} of {self.expected} frames"
        if not self.frames:
            return "FAILED: no frame decodes"
        return f"FAILED: {len(self.findings)} detections remain on {len({f['frame'] for f in self.findings})} frames"


def verify_frames(frames: dict[int, np.ndarray], verifiers: list, min_height: dict[int, float], masked: dict | None = None) -> list[dict]:
    """Findings (frame, class, box, confidence, verifier) of detections at or above the minimum height.

    With ``masked`` (frame -> Detections that were masked), a detection at least half inside the
    masked area is a detection of the mask itself (a blurred blob can still look like a head), and
    is not a finding: by GB/T 44464's own measure such an object counts as anonymized.
    """
    findings = []
    indices = sorted(frames)
    for verifier in verifiers:
        for index, detections in zip(indices, verifier([frames[i] for i in indices])):
            covered = mask_of(masked[index], frames[index].shape) if masked is not None and index in masked else None
            for box, confidence, cls in zip(detections.xyxy, detections.confidence, detections.class_id):
                if box[3] - box[1] < min_height.get(int(cls), 0):
                    continue
                if covered is not None:
                    x1, y1, x2, y2 = (max(int(round(v)), 0) for v in box)
                    if covered[y1:y2, x1:x2].size and covered[y1:y2, x1:x2].mean() >= 0.5:
                        continue
                findings.append({"frame": int(index), "class": CLASSES[int(cls)], "box": [round(float(v), 1) for v in box],
                                 "confidence": round(float(confidence), 3), "verifier": verifier.name})
    return findings


def verify_video(source, verifiers: list, min_height: dict[int, float], masked: list | None = None, expected: int | None = None,
                 batch: int = BATCH, previous: tuple["Verification", list] | None = None, progress=None) -> Verification:
    """Decode the output (a path or seekable binary file) and verify every frame; ``masked``: per-frame
    masked boxes; ``expected``: how many frames the clip has; ``previous``: the last round's
    verification and masked boxes, whose clean, identical frames are not verified again;
    ``progress``: a bar (tqdm) to count the frames on."""
    result, chunk = Verification(0, expected), {}
    before, before_masked = previous if previous else (None, None)
    dirty = {f["frame"] for f in before.findings} if before else set()

    def check(chunk: dict) -> None:
        covered = None if masked is None else {i: masked[i] for i in chunk if i < len(masked)}
        result.findings += verify_frames(chunk, verifiers, min_height, covered)
        if progress is not None:
            progress.update(len(chunk))

    for index, (_, frame, _) in enumerate(stream_frames(source)):
        digest = hashlib.blake2b(np.ascontiguousarray(frame).data, digest_size=16).digest()
        result.digests.append(digest)
        result.frames += 1
        if (before and index < len(before.digests) and before.digests[index] == digest and index not in dirty
                and masked is not None and index < len(masked) and _same(masked[index], before_masked[index])):
            result.reused += 1
            if progress is not None:
                progress.update()
            continue
        chunk[index] = frame
        if len(chunk) >= batch:
            check(chunk)
            chunk = {}
    if chunk:
        check(chunk)
    result.findings.sort(key=lambda f: f["frame"])
    return result


def _same(a: Detections, b: Detections) -> bool:
    return len(a) == len(b) and np.array_equal(a.xyxy, b.xyxy) and np.array_equal(a.class_id, b.class_id)


def needs_repair(rounds: list[Verification]) -> bool:
    """Whether to mask the last round's findings and verify again: it decoded every frame and found
    something, no more than the round before (repairs that breed findings fail the clip), after
    fewer than MAX_REPAIRS repairs."""
    last = rounds[-1]
    if not (last.complete and last.findings) or len(rounds) > MAX_REPAIRS:
        return False
    return len(rounds) == 1 or len(last.findings) <= len(rounds[-2].findings)


def repaired(rounds: list[Verification]) -> list[dict]:
    """What the second opinion found and was masked: the findings of every round but the last, each
    with the number of the round (1 = the first output) that found it."""
    return [{**f, "round": k} for k, r in enumerate(rounds[:-1], 1) for f in r.findings]


def _as_boxes(findings: list[dict]) -> dict[int, Detections]:
    per_frame: dict[int, list] = {}
    for k, finding in enumerate(findings):
        per_frame.setdefault(finding["frame"], []).append([*finding["box"], finding["class"], k])
    return {frame: Detections.from_items(items) for frame, items in per_frame.items()}


def redact_verified(source, open_target, detectors, config: RedactionConfig, repair: bool = True, blank_frames=None,
                    max_frames: int | None = None, manual: dict | None = None, progress=None) -> tuple[RedactionResult, list[Verification]]:
    """Redact ``source`` into the file ``open_target(mode)`` opens, verify it, and with ``repair``
    mask what the verifiers still found (on the frames they found it, linked and grown like any detection)
    and verify the new output again, while ``needs_repair``. Returns the result and every
    verification round: the proof keeps what the second opinion found, not only the final word.

    Privacy first: a false finding costs a small extra mask; a true one would have leaked. A
    finding that survives the repairs fails the clip."""
    with open_target("wb") as target:
        result = redact_video(source, target, detectors.redact, config, blank_frames=blank_frames, max_frames=max_frames, manual=manual,
                              progress=progress)
    phase(progress, "verify", result.frames)
    with open_target("rb") as output:
        rounds = [verify_video(output, detectors.verify, detectors.min_height, result.boxes, result.frames, progress=progress)]
    while repair and needs_repair(rounds):
        before = list(result.boxes)
        # Not extended, and linked only across a few frames: the verifiers looked at every frame between
        # and found nothing there (an extended false finding masked a sign on four frames the verifier
        # had passed; findings linked as if consecutive drew a face's mask across 87 frames).
        result.boxes = add_boxes(result.boxes, _as_boxes(rounds[-1].findings), config, result.size, result.rate,
                                 track_offset=200_000 * len(rounds), extend=False, every=1)
        with open_target("wb") as target:
            encode(source, target, result, config, progress)
        phase(progress, f"verify after repair {len(rounds)}", result.frames)
        with open_target("rb") as output:
            rounds.append(verify_video(output, detectors.verify, detectors.min_height, result.boxes, result.frames, previous=(rounds[-1], before),
                                       progress=progress))
    return result, rounds
