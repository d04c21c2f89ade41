// The page of `snn serve`: draw on the pad (mouse, pen or finger) or give an image file; the
// image goes to POST /api/predict and the answer is drawn. No library, nothing from elsewhere.
"use strict";

const $ = (id) => document.getElementById(id);
const pad = $("pad");
const ctx = pad.getContext("2d");
const state = {
  info: null,
  drawn: false,       // the pad holds strokes
  file: null,         // the last file given (a File), while it is what is shown
  busy: false,        // a request is on its way
  again: false,       // something changed while it was: ask again when it is back
  timer: null,
  last: null,         // the last answer shown
  generation: 0,      // counts clears and new files: an answer to what came before is dropped
};
const DEBOUNCE_MS = 120;
const STROKE = 20;    // pen width on the 280-pixel pad: MNIST-like after scaling to 20x20

function clearPad() {
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, pad.width, pad.height);
  state.drawn = false;
}

function padPoint(event) {
  const box = pad.getBoundingClientRect();
  return [(event.clientX - box.left) * pad.width / box.width,
          (event.clientY - box.top) * pad.height / box.height];
}

let stroke = null;  // [x, y] of the pointer while it draws
function strokeTo([x, y]) {
  ctx.strokeStyle = "#fff";
  ctx.fillStyle = "#fff";
  ctx.lineWidth = STROKE;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  if (stroke) {
    ctx.beginPath();
    ctx.moveTo(stroke[0], stroke[1]);
    ctx.lineTo(x, y);
    ctx.stroke();
  } else {
    ctx.beginPath();
    ctx.arc(x, y, STROKE / 2, 0, 2 * Math.PI);
    ctx.fill();
  }
  stroke = [x, y];
}

pad.addEventListener("pointerdown", (event) => {
  if (event.button !== 0) return;
  event.preventDefault();
  pad.setPointerCapture(event.pointerId);
  if (state.file) { clearPad(); state.file = null; $("source").textContent = ""; }
  stroke = null;
  strokeTo(padPoint(event));
  state.drawn = true;
  schedule();
});
pad.addEventListener("pointermove", (event) => {
  if (!stroke) return;
  event.preventDefault();
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
  for (const e of (events.length ? events : [event])) strokeTo(padPoint(e));
  schedule();
});
for (const type of ["pointerup", "pointercancel", "lostpointercapture"]) {
  pad.addEventListener(type, () => { if (stroke) { stroke = null; schedule(0); } });
}

$("clear").addEventListener("click", () => {
  state.generation++;
  clearPad();
  state.file = null;
  $("source").textContent = "";
  showError("");
  showEmpty();
});

const stepsInput = $("steps");
stepsInput.addEventListener("input", () => {
  $("steps-value").textContent = stepsInput.value;
  schedule();
});

// Upload: the file input and drops on the zone (or on the pad).
$("file").addEventListener("change", () => { if ($("file").files[0]) useFile($("file").files[0]); });
for (const zone of [$("drop"), pad]) {
  zone.addEventListener("dragover", (event) => { event.preventDefault(); $("drop").classList.add("over"); });
  zone.addEventListener("dragleave", () => $("drop").classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    $("drop").classList.remove("over");
    const file = event.dataTransfer.files[0];
    if (file) useFile(file);
  });
}

function useFile(file) {
  state.generation++;
  state.file = file;
  $("source").textContent = `reading ${file.name} (${Math.ceil(file.size / 1024)} KB)`;
  // Show the file on the pad when the browser can decode it; the server reads it either way.
  const url = URL.createObjectURL(file);
  const img = new Image();
  img.onload = () => {
    clearPad();
    const scale = Math.min(pad.width / img.width, pad.height / img.height);
    const w = img.width * scale, h = img.height * scale;
    ctx.drawImage(img, (pad.width - w) / 2, (pad.height - h) / 2, w, h);
    URL.revokeObjectURL(url);
  };
  img.onerror = () => URL.revokeObjectURL(url);
  img.src = url;
  schedule(0);
}

// body[data-pending] is "yes" from a change until the answer to the latest one is shown.
function schedule(delay = DEBOUNCE_MS) {
  clearTimeout(state.timer);
  document.body.dataset.pending = "yes";
  state.timer = setTimeout(send, delay);
}

async function send() {
  state.timer = null;
  if (state.busy) { state.again = true; return; }
  if (!state.file && !state.drawn) { showEmpty(); settled(); return; }
  state.busy = true;
  state.again = false;
  const steps = stepsInput.value;
  const generation = state.generation;
  try {
    let body, headers = {};
    if (state.file) {  // the file as given, in a form (any format the server reads)
      body = new FormData();
      body.append("file", state.file, state.file.name);
    } else {           // the drawing as a PNG
      body = await new Promise((done) => pad.toBlob(done, "image/png"));
      headers["Content-Type"] = "image/png";
    }
    const answer = await fetch(`/api/predict?steps=${encodeURIComponent(steps)}`,
                               { method: "POST", body, headers });
    let json = null;
    try { json = await answer.json(); } catch (e) { /* not JSON: reported below */ }
    if (generation !== state.generation) return;  // cleared, or another file given, since
    if (!answer.ok || !json || json.error) {
      throw new Error((json && json.error) || `the server answered ${answer.status}`);
    }
    showError("");
    if (state.file) $("source").textContent = `read from ${state.file.name}`;
    show(json);
  } catch (error) {
    if (generation !== state.generation) return;
    if (state.file) $("source").textContent = `could not read ${state.file.name}`;
    showError(error.message || String(error));
  } finally {
    state.busy = false;
    if (state.again) schedule(0);
    else settled();
  }
}

function settled() {
  if (state.timer === null && !state.busy) document.body.dataset.pending = "no";
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
  if (message) document.body.dataset.state = "error";
}

function showEmpty() {
  state.last = null;
  document.body.dataset.state = "empty";
  $("prediction").textContent = "–";
  $("runner-up").textContent = "–";
  $("confidence").textContent = "";
  $("runner-up-confidence").textContent = "";
  $("quick").textContent = "";
  $("bars").replaceChildren();
  $("layers").replaceChildren();
  const seen = $("seen").getContext("2d");
  seen.clearRect(0, 0, 28, 28);
  const raster = $("raster");
  raster.getContext("2d").clearRect(0, 0, raster.width, raster.height);
}

const percent = (share) => `${(100 * share).toFixed(share < 0.1 ? 1 : 0)}%`;

function show(result) {
  state.last = result;
  const classes = result.classes;
  $("prediction").textContent = classes[result.prediction];
  $("confidence").textContent = percent(result.confidence);
  $("runner-up").textContent = classes[result.runner_up];
  $("runner-up-confidence").textContent = percent(result.runner_up_confidence);
  $("quick").textContent = `→ ${classes[result.prediction]}`;  // beside the pad, on a phone too
  drawSeen(result.image);
  const spikes = result.spike_counts !== null;
  $("bars-title").textContent = spikes ? "Output spikes per class" : "Mean output per class";
  bars($("bars"), classes, spikes ? result.spike_counts : result.scores, result.prediction,
       (v) => spikes ? String(v) : v.toFixed(2));
  drawRaster(result.raster, classes, spikes);
  const rates = result.layers.map((l) => l.rate);
  bars($("layers"), result.layers.map((l) => l.name), rates, -1, percent, 1);
  document.body.dataset.state = "shown";
  document.body.dataset.prediction = classes[result.prediction];
}

function bars(box, names, values, best, format, top) {
  const most = top || Math.max(...values.map(Math.abs), 1e-9);
  box.replaceChildren(...names.map((name, i) => {
    const row = document.createElement("div");
    row.className = "bar" + (i === best ? " best" : "");
    const label = document.createElement("span");
    label.textContent = name;
    const track = document.createElement("div");
    track.className = "track";
    const fill = document.createElement("div");
    fill.className = "fill";
    fill.style.width = `${Math.max(0, Math.min(1, values[i] / most)) * 100}%`;
    track.append(fill);
    const number = document.createElement("span");
    number.className = "n";
    number.textContent = format(values[i]);
    row.append(label, track, number);
    return row;
  }));
}

function drawSeen(image) {
  const seen = $("seen").getContext("2d");
  const pixels = seen.createImageData(28, 28);
  image.forEach((row, y) => row.forEach((v, x) => {
    const i = 4 * (28 * y + x);
    pixels.data[i] = pixels.data[i + 1] = pixels.data[i + 2] = v;
    pixels.data[i + 3] = 255;
  }));
  seen.putImageData(pixels, 0, 0);
}

// The output layer over time: a row per class, a column per time step, as wide as the page
// allows (drawn at the screen's pixel density, so labels stay sharp).
function drawRaster(raster, classes, spikes) {
  const canvas = $("raster");
  const steps = raster.length;
  const label = 22, top = 4, bottom = 18, row = 18;
  const width = canvas.clientWidth || 320;
  const height = top + classes.length * row + bottom;
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.round(width * dpr);
  canvas.height = Math.round(height * dpr);
  canvas.style.height = `${height}px`;
  canvas.dataset.steps = String(steps);
  const g = canvas.getContext("2d");
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.fillStyle = "#fff";
  g.fillRect(0, 0, width, height);
  g.font = "12px sans-serif";
  g.textBaseline = "middle";
  const cell = (width - label - 4) / Math.max(steps, 1);
  const gap = cell > 4 ? 1 : 0;
  const most = spikes ? 1 : Math.max(...raster.flat().map(Math.abs), 1e-9);
  const best = state.last ? state.last.prediction : -1;
  classes.forEach((name, c) => {
    const y = top + c * row;
    g.fillStyle = c % 2 ? "#f3f5f8" : "#fff";
    g.fillRect(label, y, steps * cell, row);
    g.fillStyle = c === best ? "#e4572e" : "#1c2330";
    g.fillText(name, 6, y + row / 2);
    for (let t = 0; t < steps; t++) {
      const v = raster[t][c];
      if (!v) continue;
      g.globalAlpha = spikes ? 1 : Math.min(1, Math.abs(v) / most);
      g.fillStyle = c === best ? "#e4572e" : "#34495e";
      g.fillRect(label + t * cell + gap, y + 3, Math.max(1, cell - 2 * gap), row - 6);
      g.globalAlpha = 1;
    }
  });
  g.fillStyle = "#667085";
  g.fillText(`time steps 1 … ${steps}`, label, top + classes.length * row + bottom / 2 + 2);
}

// The page names what the model reads: a digit, or a piece of clothing.
function showSubject(subject) {
  document.title = `snn serve: draw a ${subject}`;
  $("heading").textContent = `Draw a ${subject}, watch the spikes`;
  $("input-title").textContent = `Your ${subject}`;
  $("pad").setAttribute("aria-label", `drawing area: draw a ${subject} here`);
}

async function start() {
  clearPad();
  showEmpty();
  try {
    const answer = await fetch("/api/info");
    const info = await answer.json();
    state.info = info;
    stepsInput.max = info.max_steps;
    stepsInput.value = info.steps;
    $("steps-value").textContent = info.steps;
    showSubject(info.subject);
    const weights = info.bundled ? "the bundled weights" : info.checkpoint;
    $("info").textContent = `${info.model} · ${weights} · trained at ${info.steps} ` +
      `time steps · ${info.precision}`;
    document.body.dataset.ready = "yes";
  } catch (error) {
    showError(`cannot reach snn serve: ${error.message || error}`);
  }
}
start();
