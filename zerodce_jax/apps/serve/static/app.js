// zerodce serve: the page. Plain JS, no libraries, nothing loaded from
// elsewhere. Text from the server or from file names is only ever set with
// textContent, never parsed as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const PAGE = { "X-Zerodce": "1" };  // the server refuses POST/DELETE without
const state = {
  config: null,
  images: [],        // public descriptions from the server
  current: null,     // id of the image shown
  wanted: null,      // the preview key asked for last
  inflight: false,
  busyTimer: null,
  afterUrl: null,
  jobId: null,
};

function say(text, ok = false) {
  const m = $("message");
  m.textContent = text || "";
  m.className = ok ? "ok" : "";
}

function progress(fraction, text) {
  const box = $("progress");
  if (fraction === null) { box.hidden = true; return; }
  box.hidden = false;
  if (fraction === undefined) $("bar").removeAttribute("value");
  else $("bar").value = Math.max(0, Math.min(1, fraction));
  $("progress-text").textContent = text || "";
}

async function api(method, url, body) {
  const opt = { method, headers: { ...PAGE } };
  if (body !== undefined) {
    opt.headers["Content-Type"] = "application/json";
    opt.body = JSON.stringify(body);
  }
  const r = await fetch(url, opt);
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(data.error || `${r.status} ${r.statusText}`);
  return data;
}

const sleep = (ms) => new Promise((res) => setTimeout(res, ms));

// ------------------------------------------------------------ settings --
function settings() {
  const mode = $("exposure-mode").value;
  return {
    model: $("model").value,
    strength: $("strength").value,
    exposure: mode === "target" ? $("exposure").value : mode,
    denoise: $("denoise").value,
    colour: $("colour").value,
    highlights: $("highlights").checked ? "protect" : "off",
  };
}

function showValues() {
  const mode = $("exposure-mode").value;
  $("strength-out").textContent = (+$("strength").value).toFixed(2);
  $("denoise-out").textContent = (+$("denoise").value).toFixed(2);
  $("colour-out").textContent = (+$("colour").value).toFixed(2);
  $("exposure").disabled = mode !== "target";
  $("strength").disabled = mode !== "off";  // exposure picks the strength
  $("exposure-out").textContent = mode === "target"
    ? (+$("exposure").value).toFixed(2)
    : mode === "auto" ? "per scene" : "";
}

function applyDefaults(modelId) {
  const m = state.config.models.find((x) => x.id === modelId);
  if (!m) return;
  const d = m.defaults;
  $("strength").value = d.strength;
  if (d.exposure === "off") $("exposure-mode").value = "off";
  else if (d.exposure === state.config.auto_exposure) {
    $("exposure-mode").value = "auto";
  } else {
    $("exposure-mode").value = "target";
    $("exposure").value = d.exposure;
  }
  $("denoise").value = d.denoise;
  $("colour").value = d.colour;
  $("highlights").checked = d.highlights === "protect";
}

// ------------------------------------------------------------- preview --
function previewKey() {
  if (!state.current) return null;
  return `${state.current}?${new URLSearchParams(settings())}`;
}

function requestPreview() {
  showValues();
  state.wanted = previewKey();
  if (!state.inflight) pump();
}

function busy(on) {
  clearTimeout(state.busyTimer);
  if (!on) { $("busy").hidden = true; document.body.dataset.busy = "0"; return; }
  document.body.dataset.busy = "1";
  const start = performance.now();
  const tick = () => {
    const s = (performance.now() - start) / 1000;
    $("busy").hidden = false;
    $("busy-text").textContent = s < 1.5 ? "working…"
      : `estimating the curves… ${Math.round(s)} s`;
    state.busyTimer = setTimeout(tick, 500);
  };
  state.busyTimer = setTimeout(tick, 250);
}

async function pump() {
  const key = state.wanted;
  if (!key) return;
  state.wanted = null;
  state.inflight = true;
  busy(true);
  try {
    const [id, query] = key.split("?");
    const r = await fetch(`/api/images/${id}/preview?${query}`);
    if (!r.ok) {
      const data = await r.json().catch(() => ({}));
      throw new Error(data.error || `${r.status} ${r.statusText}`);
    }
    const blob = await r.blob();
    if (id === state.current) {
      const url = URL.createObjectURL(blob);
      const after = $("after");
      after.src = url;
      await after.decode().catch(() => {});
      if (state.afterUrl) URL.revokeObjectURL(state.afterUrl);
      state.afterUrl = url;
      after.dataset.key = key;
    }  // else: the user moved on to another image; drop this answer
  } catch (e) {
    say(e.message);
  } finally {
    state.inflight = false;
    busy(false);
    if (state.wanted) pump();
  }
}

function setSplit(percent) {
  const v = Math.max(0, Math.min(100, percent));
  $("split").value = v;
  $("after").style.clipPath = `inset(0 0 0 ${v}%)`;
  $("handle").style.left = `${v}%`;
}

// -------------------------------------------------------------- images --
function describe(im) {
  const bits = [`${im.width}×${im.height}`, im.format.toUpperCase(),
                `${im.bit_depth}-bit`];
  if (im.gray) bits.push("grey");
  if (im.alpha) bits.push("alpha");
  return bits.join(", ");
}

function renderList() {
  const list = $("list");
  list.replaceChildren();
  for (const im of state.images) {
    const li = document.createElement("li");
    li.className = im.id === state.current ? "current" : "";
    li.dataset.id = im.id;
    const thumb = document.createElement("img");
    thumb.alt = "";
    thumb.src = `/api/images/${im.id}/before`;
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = im.name;
    name.title = `${im.name} (${describe(im)})`;
    const remove = document.createElement("button");
    remove.type = "button";
    remove.textContent = "×";
    remove.setAttribute("aria-label", `remove ${im.name}`);
    remove.addEventListener("click", (ev) => { ev.stopPropagation(); removeImage(im.id); });
    li.append(thumb, name, remove);
    li.addEventListener("click", () => select(im.id));
    list.append(li);
  }
  const none = state.images.length === 0;
  $("download").disabled = none || state.jobId !== null;
  $("download-all").disabled = state.images.length < 2 || state.jobId !== null;
}

function select(id) {
  state.current = id;
  const im = state.images.find((x) => x.id === id);
  $("empty").hidden = !!im;
  $("compare").hidden = !im;
  $("split").hidden = !im;
  $("info").textContent = im ? `${im.name}: ${describe(im)}` : "";
  renderList();
  if (!im) return;
  $("after").removeAttribute("src");
  delete $("after").dataset.key;
  $("before").src = `/api/images/${id}/before`;
  requestPreview();
}

async function removeImage(id) {
  try { await api("DELETE", `/api/images/${id}`); } catch (e) { say(e.message); }
  state.images = state.images.filter((x) => x.id !== id);
  if (state.current === id) select(state.images.length ? state.images[0].id : null);
  else renderList();
}

function uploadOne(file, i, n) {
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/images");
    xhr.setRequestHeader("X-Zerodce", "1");
    xhr.setRequestHeader("X-Filename", encodeURIComponent(file.name));
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    const label = `${i + 1}/${n}: ${file.name}`;
    xhr.upload.onprogress = (e) => {
      if (!e.lengthComputable) return;
      const done = e.loaded >= e.total;
      progress((i + (done ? 1 : e.loaded / e.total)) / n,
               done ? `reading ${label}…` : `uploading ${label}`);
    };
    xhr.onload = () => {
      let data = {};
      try { data = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
      if (xhr.status === 200) resolve({ image: data });
      else resolve({ error: data.error || `${file.name}: refused (${xhr.status})` });
    };
    xhr.onerror = () => resolve({ error: `${file.name}: the upload failed (the server stopped, or the file is too large)` });
    xhr.send(file);
  });
}

async function addFiles(files) {
  const limits = state.config.limits;
  const errors = [];
  const todo = [];
  for (const f of files) {
    if (f.size > limits.max_upload_bytes) {
      errors.push(`${f.name}: ${(f.size / 2 ** 20).toFixed(1)} MiB, larger than the limit of ${(limits.max_upload_bytes / 2 ** 20).toFixed(0)} MiB`);
    } else if (f.size === 0) {
      errors.push(`${f.name}: empty file`);
    } else {
      todo.push(f);
    }
  }
  say("");
  for (let i = 0; i < todo.length; i++) {
    const res = await uploadOne(todo[i], i, todo.length);
    if (res.error) { errors.push(res.error); continue; }
    state.images.push(res.image);
    if (!state.current) select(res.image.id); else renderList();
  }
  progress(null);
  say(errors.join("\n"));
  $("files").value = "";
}

// ----------------------------------------------------------- downloads --
async function download(ids) {
  say("");
  const body = { ids, ...settings(), format: $("format").value };
  let st;
  try {
    st = await api("POST", "/api/jobs", body);
  } catch (e) { say(e.message); return; }
  state.jobId = st.id;
  $("cancel").hidden = false;
  renderList();
  try {
    while (st.state === "queued" || st.state === "running") {
      progress(st.progress, `${st.done}/${st.total} enhanced at full resolution`);
      await sleep(250);
      st = await api("GET", `/api/jobs/${st.id}`);
    }
    if (st.state === "done") {
      progress(1, `${st.total}/${st.total} done`);
      const a = document.createElement("a");
      a.href = `/api/jobs/${st.id}/file`;
      a.download = st.filename;
      document.body.append(a);
      a.click();
      a.remove();
    }
    const notes = [...st.errors, ...st.warnings];
    if (st.state === "cancelled") notes.unshift("download cancelled");
    say(notes.join("\n"), st.state === "done" && st.errors.length === 0);
  } catch (e) {
    say(e.message);
  } finally {
    state.jobId = null;
    $("cancel").hidden = true;
    setTimeout(() => { if (state.jobId === null) progress(null); }, 1500);
    renderList();
  }
}

// ---------------------------------------------------------------- start --
async function start() {
  try {
    state.config = await api("GET", "/api/config");
  } catch (e) { say(`cannot reach the server: ${e.message}`); return; }
  const cfg = state.config;
  for (const m of cfg.models) {
    const o = document.createElement("option");
    o.value = m.id;
    o.textContent = m.label;
    $("model").append(o);
  }
  $("model").value = cfg.default_model;
  $("strength").max = cfg.max_strength;
  $("limits").textContent = `JPEG, PNG, TIFF, WebP, BMP (8/16-bit), up to ${Math.round(cfg.limits.max_upload_bytes / 2 ** 20)} MiB and ${cfg.limits.max_pixels / 1e6} megapixels each. Nothing leaves this computer.`;
  applyDefaults(cfg.default_model);
  showValues();

  for (const id of ["strength", "exposure", "denoise", "colour"]) {
    $(id).addEventListener("input", requestPreview);
  }
  for (const id of ["model", "exposure-mode", "highlights"]) {
    $(id).addEventListener("change", requestPreview);
  }
  $("files").addEventListener("change", (e) => addFiles([...e.target.files]));
  const drop = $("drop");
  for (const t of ["dragenter", "dragover"]) {
    drop.addEventListener(t, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  for (const t of ["dragleave", "drop"]) {
    drop.addEventListener(t, () => drop.classList.remove("over"));
  }
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    addFiles([...e.dataTransfer.files]);
  });
  // dropping anywhere else must not navigate away to the file
  window.addEventListener("dragover", (e) => e.preventDefault());
  window.addEventListener("drop", (e) => e.preventDefault());

  $("split").addEventListener("input", (e) => setSplit(+e.target.value));
  const cmp = $("compare");
  const follow = (e) => {
    const r = cmp.getBoundingClientRect();
    setSplit(((e.clientX - r.left) / r.width) * 100);
  };
  cmp.addEventListener("pointerdown", (e) => { cmp.setPointerCapture(e.pointerId); follow(e); });
  cmp.addEventListener("pointermove", (e) => { if (e.buttons) follow(e); });
  setSplit(50);

  $("download").addEventListener("click", () => state.current && download([state.current]));
  $("download-all").addEventListener("click", () => download(state.images.map((x) => x.id)));
  $("cancel").addEventListener("click", () => {
    if (state.jobId) api("DELETE", `/api/jobs/${state.jobId}`).catch(() => {});
  });

  try {
    state.images = (await api("GET", "/api/images")).images;
  } catch (e) { state.images = []; }
  if (state.images.length) select(state.images[0].id); else renderList();
  document.body.dataset.ready = "1";
}

start();
