// The review page: queue, clip view with labels drawn in sync with playback (by frame time), decisions.
// Labels are fetched in windows of frames around the playhead, so long clips never load whole.
"use strict";

const WINDOW = 200; // frames of labels per request
const COLOURS = ["#ff6347", "#4169e1", "#ffd700", "#32cd32", "#ee82ee", "#00ced1"];
const state = { me: null, page: 0, size: 50, queue: [], position: -1, clip: null, windows: new Map(),
                frame: 0, selected: 0, drawing: null, dragStart: null, dragBox: null };

const $ = (id) => document.getElementById(id);
const show = (section) => ["login", "queue", "clip"].forEach((s) => ($(s).hidden = s !== section));

async function api(path, options = {}) {
  const response = await fetch(path, { credentials: "same-origin", headers: { "Content-Type": "application/json" }, ...options });
  if (response.status === 401) { show("login"); throw new Error("signed out"); }
  if (!response.ok) throw new Error((await response.json()).detail || response.statusText);
  return response.json();
}

function status(text) { $("status").textContent = text; }

// ---- sign-in and queue -------------------------------------------------------------------
$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const response = await fetch("/api/login", { method: "POST", headers: { "Content-Type": "application/json" },
                                               body: JSON.stringify({ token: $("token").value }) });
  if (!response.ok) { $("login-error").textContent = (await response.json()).detail; return; }
  await start();
});

async function start() {
  try { state.me = await api("/api/me"); } catch (error) { show("login"); return; }
  $("who").textContent = `${state.me.user} (${state.me.role}), region ${state.me.region}`;
  $("fix-class").innerHTML = state.me.classes.map((c) => `<option>${c}</option>`).join("");
  await loadQueue();
}

async function loadQueue() {
  const params = new URLSearchParams({ page: state.page, size: state.size });
  if ($("filter-scenario").value) params.set("scenario", $("filter-scenario").value);
  if ($("filter-camera").value) params.set("camera", $("filter-camera").value);
  const data = await api(`/api/queue?${params}`);
  state.queue = data.clips;
  fillSelect("filter-scenario", data.scenarios);
  fillSelect("filter-camera", data.cameras);
  $("queue-total").textContent = `${data.total} clips`;
  $("page").textContent = `page ${data.page + 1} of ${Math.max(1, Math.ceil(data.total / data.size))}`;
  $("queue-rows").innerHTML = data.clips.map((c, i) =>
    `<tr data-i="${i}"><td><code>${c.clip_id.slice(0, 12)}</code></td><td>${c.camera}</td><td>${c.frames}</td>` +
    `<td>${c.low_confidence}</td><td>${c.seen_once}</td><td>${c.pending_redactions}</td><td>${c.decided ? "yes" : ""}</td></tr>`).join("");
  show("queue");
}

function fillSelect(id, values) {
  const select = $(id), current = select.value;
  select.innerHTML = `<option value="">all</option>` + values.map((v) => `<option>${v}</option>`).join("");
  select.value = current;
}

$("queue-rows").addEventListener("click", (event) => {
  const row = event.target.closest("tr");
  if (row) openClip(Number(row.dataset.i));
});
$("filter-scenario").addEventListener("change", () => { state.page = 0; loadQueue(); });
$("filter-camera").addEventListener("change", () => { state.page = 0; loadQueue(); });
$("prev-page").addEventListener("click", () => { state.page = Math.max(0, state.page - 1); loadQueue(); });
$("next-page").addEventListener("click", () => { state.page += 1; loadQueue(); });
$("back").addEventListener("click", () => { $("video").pause(); loadQueue(); });

// ---- clip view -----------------------------------------------------------------------------
async function openClip(position) {
  if (position < 0 || position >= state.queue.length) return;
  state.position = position;
  const id = state.queue[position].clip_id;
  state.clip = await api(`/api/clips/${id}`);
  state.windows = new Map();
  state.frame = 0;
  state.selected = 0;
  $("clip-title").innerHTML = `clip <code>${id.slice(0, 16)}</code> · ${state.clip.camera} · ${state.clip.frames} frames at ${state.clip.fps} fps`;
  $("hidden-note").textContent = state.clip.hidden ? "hidden from export until redact@R applies the drawn boxes" : "";
  const video = $("video");
  video.src = `/media/${id}`;
  show("clip");
  await new Promise((resolve) => { video.onloadeddata = resolve; });
  sizeOverlay();
  await renderFrame();
  if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(onVideoFrame);
  else video.addEventListener("timeupdate", renderFrame);
}

function onVideoFrame() { renderFrame(); $("video").requestVideoFrameCallback(onVideoFrame); }
$("video").addEventListener("seeked", () => renderFrame()); // frame steps while paused

function sizeOverlay() {
  const video = $("video"), canvas = $("overlay");
  canvas.width = video.clientWidth;
  canvas.height = video.clientHeight;
}
window.addEventListener("resize", () => { if (state.clip) { sizeOverlay(); renderFrame(); } });

function frameAt(time) {
  // The frame on screen: the last one whose presentation time has started (half a frame of slack).
  const seconds = state.clip.seconds;
  const half = 0.5 / state.clip.fps;
  let lo = 0, hi = seconds.length - 1;
  while (lo < hi) { const mid = (lo + hi + 1) >> 1; if (seconds[mid] <= time + half) lo = mid; else hi = mid - 1; }
  return lo;
}

async function labelsFor(frame) {
  const start = Math.floor(frame / WINDOW) * WINDOW;
  if (!state.windows.has(start)) {
    state.windows.set(start, api(`/api/clips/${state.clip.clip_id}/labels?first=${start}&last=${start + WINDOW - 1}`));
  }
  return state.windows.get(start);
}

function nearestLabeled(frame) {
  // Labels exist on sampled frames; between them show the latest sampled frame's labels.
  let best = -1;
  for (const index of state.clip.labeled) { if (index <= frame) best = index; else break; }
  return best;
}

async function renderFrame() {
  if (!state.clip) return;
  const video = $("video"), canvas = $("overlay"), context = canvas.getContext("2d");
  state.frame = frameAt(video.currentTime);
  const labeled = nearestLabeled(state.frame);
  const data = labeled >= 0 ? await labelsFor(labeled) : { detections: [], lanes: [], reviews: [] };
  const boxes = data.detections.filter((d) => d.index === labeled);
  const lanes = data.lanes.filter((l) => l.index === labeled);
  state.boxes = boxes;
  const scale = canvas.width / state.clip.width;
  context.clearRect(0, 0, canvas.width, canvas.height);
  const decided = new Map(data.reviews.filter((r) => r.target === "detection").map((r) => [r.target_id, r.decision]));
  context.lineWidth = 2;
  for (const lane of lanes) {
    context.strokeStyle = lane.color === "yellow" ? "#ffc800" : "#ffffff";
    context.setLineDash(lane.type === "dashed" ? [8, 6] : []);
    context.beginPath();
    let started = false;
    lane.xs.forEach((x, k) => {
      if (x < 0) return;
      if (!started) { context.moveTo(x * scale, lane.ys[k] * scale); started = true; } else context.lineTo(x * scale, lane.ys[k] * scale);
    });
    context.stroke();
  }
  context.setLineDash([]);
  boxes.forEach((d, k) => {
    const colour = COLOURS[state.me.classes.indexOf(d.label) % COLOURS.length];
    context.strokeStyle = decided.get(d.detection_id) === "reject" ? "#888" : colour;
    context.lineWidth = k === state.selected ? 4 : 2;
    context.strokeRect(d.x1 * scale, d.y1 * scale, (d.x2 - d.x1) * scale, (d.y2 - d.y1) * scale);
    context.fillStyle = colour;
    context.fillText(`${d.label} ${(d.confidence * 100).toFixed(0)}%`, d.x1 * scale, Math.max(10, d.y1 * scale - 3));
  });
  for (const review of data.reviews.filter((r) => r.target === "redaction" && r.index === state.frame)) {
    const [x1, y1, x2, y2] = JSON.parse(review.after).box;
    context.strokeStyle = "#ff00ff";
    context.strokeRect(x1 * scale, y1 * scale, (x2 - x1) * scale, (y2 - y1) * scale);
  }
  if (state.dragBox) {
    const [x1, y1, x2, y2] = state.dragBox;
    context.strokeStyle = "#ff00ff";
    context.strokeRect(x1, y1, x2 - x1, y2 - y1);
  }
  $("frame-info").textContent = `frame ${state.frame + 1} / ${state.clip.frames} · t = ${video.currentTime.toFixed(2)} s` +
    (labeled >= 0 ? ` · labels from frame ${labeled + 1}` : " · no labeled frame yet") + (state.drawing ? ` · drawing a missed ${state.drawing}` : "");
  $("labels").innerHTML = boxes.map((d, k) =>
    `<li data-k="${k}" class="${k === state.selected ? "selected" : ""}">${d.label} ${d.attrs !== "{}" ? d.attrs : ""} ` +
    `${(d.confidence * 100).toFixed(0)}% ${decided.has(d.detection_id) ? "· " + decided.get(d.detection_id) : ""}</li>`).join("");
  $("decisions").innerHTML = data.reviews.slice(-8).map((r) => `<li>${r.reviewer}: ${r.decision} ${r.target} ${r.index ?? ""}</li>`).join("");
}

$("labels").addEventListener("click", (event) => {
  const item = event.target.closest("li");
  if (item) { state.selected = Number(item.dataset.k); renderFrame(); }
});

async function decide(body) {
  const result = await api("/api/reviews", { method: "POST", body: JSON.stringify({ clip_id: state.clip.clip_id, ...body }) });
  state.windows = new Map(); // labels and reviews changed: fetch again
  status(`${body.decision} recorded${result.hidden_from_export ? "; clip hidden from export until redact@R applies it" : ""}`);
  $("hidden-note").textContent = result.hidden_from_export ? "hidden from export until redact@R applies the drawn boxes" : "";
  await renderFrame();
}

function selectedDetection() { return state.boxes && state.boxes[state.selected]; }

function step(frames) {
  const video = $("video");
  video.pause();
  const target = Math.min(Math.max(state.frame + frames, 0), state.clip.frames - 1);
  video.currentTime = state.clip.seconds[target] + 0.25 / state.clip.fps;
}

// ---- drawing a missed face or plate --------------------------------------------------------
function canvasPoint(event) {
  const rect = $("overlay").getBoundingClientRect();
  return [event.clientX - rect.left, event.clientY - rect.top];
}
$("overlay").addEventListener("mousedown", (event) => {
  if (!state.drawing) return;
  state.dragStart = canvasPoint(event);
});
$("overlay").addEventListener("mousemove", (event) => {
  if (!state.dragStart) return;
  const [x, y] = canvasPoint(event), [x0, y0] = state.dragStart;
  state.dragBox = [Math.min(x, x0), Math.min(y, y0), Math.max(x, x0), Math.max(y, y0)];
  renderFrame();
});
$("overlay").addEventListener("mouseup", async () => {
  if (!state.dragStart || !state.dragBox) { state.dragStart = null; return; }
  const scale = $("overlay").width / state.clip.width;
  const box = state.dragBox.map((v) => Math.round(v / scale * 10) / 10);
  const kind = state.drawing;
  state.dragStart = state.dragBox = state.drawing = null;
  if (box[2] - box[0] < 2 || box[3] - box[1] < 2) return;
  await decide({ target: "redaction", index: state.frame, decision: `missed_${kind}`, after: { box } });
});

// ---- keyboard --------------------------------------------------------------------------------
document.addEventListener("keydown", async (event) => {
  if ($("clip").hidden || event.target.tagName === "INPUT" || event.target.tagName === "SELECT") return;
  const detection = selectedDetection();
  const keys = {
    " ": () => ($("video").paused ? $("video").play() : $("video").pause()),
    ArrowRight: () => step(1),
    ArrowLeft: () => step(-1),
    Tab: () => { state.selected = state.boxes && state.boxes.length ? (state.selected + 1) % state.boxes.length : 0; renderFrame(); },
    a: () => detection && decide({ target: "detection", target_id: detection.detection_id, decision: "accept" }),
    r: () => detection && decide({ target: "detection", target_id: detection.detection_id, decision: "reject" }),
    c: () => detection && decide({ target: "detection", target_id: detection.detection_id, decision: "fix", after: { label: $("fix-class").value } }),
    f: () => { state.drawing = "face"; $("video").pause(); renderFrame(); },
    l: () => { state.drawing = "plate"; $("video").pause(); renderFrame(); },
    A: () => decide({ target: "clip", decision: "accept" }),
    R: () => decide({ target: "clip", decision: "reject" }),
    n: () => openClip(state.position + 1),
    p: () => openClip(state.position - 1),
    Escape: () => { state.drawing = null; state.dragBox = null; renderFrame(); },
  };
  if (keys[event.key]) {
    event.preventDefault();
    try { await keys[event.key](); } catch (error) { status(error.message); }
  }
});

start();
