// edgecam technician page: plain JavaScript, no framework, nothing loaded from outside the node.
// The token lives in sessionStorage (this tab only) and goes out only as "Authorization: Bearer".
// <video> and downloads use short-lived read-only tickets from POST /api/v1/ticket (see docs/lan-api.md).
"use strict";
(() => {
  const KEY = "edgecam.token";
  const PAGE = 50;
  const $ = (id) => document.getElementById(id);
  const state = { after: null, clips: new Map(), blobs: [], selected: new Set(), playing: null, retried: false, timer: null, seq: 0 };

  class SignedOut extends Error {}

  const token = () => sessionStorage.getItem(KEY);

  function show(text, kind) {
    const m = $("message");
    m.textContent = text;
    m.className = "message" + (kind === "info" ? " info" : "");
    m.hidden = !text;
  }

  async function errorText(resp) {
    try {
      const body = await resp.json();
      return body.error || resp.statusText;
    } catch (e) {
      return resp.status + " " + resp.statusText;
    }
  }

  async function api(path, opts = {}, tok = token()) {
    const headers = Object.assign({}, opts.headers, { Authorization: "Bearer " + tok });
    const resp = await fetch(path, Object.assign({}, opts, { headers, cache: "no-store", credentials: "omit" }));
    if (resp.status === 401) {
      signOut("The token was rejected. Sign in again.");
      throw new SignedOut();
    }
    if (!resp.ok) throw new Error(await errorText(resp));
    return resp;
  }

  // Run an action; report failures in the message bar (a sign-out already said why).
  async function guard(fn, what) {
    try {
      await fn();
      if (what) show(""); // a user action that worked clears an earlier error
    } catch (err) {
      if (!(err instanceof SignedOut)) show((what ? what + " failed: " : "") + (err.message || String(err)));
    }
  }

  const enc = encodeURIComponent;
  const pad = (n) => String(n).padStart(2, "0");
  // One time rule (docs/interface.md): stored in UTC; shown in this browser's local time with the zone
  // named, and UTC beside it, since a clip is evidence.
  function zoneName(d) {
    const part = new Intl.DateTimeFormat(undefined, { timeZoneName: "short" }).formatToParts(d)
      .find((p) => p.type === "timeZoneName");
    return part ? part.value : "local";
  }
  function localText(ts) {
    const d = new Date(ts * 1000);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())} ${zoneName(d)}`;
  }
  function utcText(ts) {
    return new Date(ts * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");
  }
  function when(ts) {
    return `${localText(ts)} (${utcText(ts).slice(11, 19)} UTC)`;
  }
  function size(bytes) {
    const units = ["B", "kB", "MB", "GB", "TB"];
    let i = 0;
    while (bytes >= 1000 && i < units.length - 1) { bytes /= 1000; i++; }
    return (i ? bytes.toFixed(1) : bytes) + " " + units[i];
  }

  // ---- sign in / out -------------------------------------------------------------------------------

  async function signIn(ev) {
    ev.preventDefault();
    const tok = $("token").value.trim();
    if (!tok) return;
    const resp = await fetch("/api/v1/health", { headers: { Authorization: "Bearer " + tok }, cache: "no-store", credentials: "omit" });
    if (resp.status === 401) return show("Token rejected: check it and try again.");
    if (resp.status === 429) return show("Too many wrong tokens from this address; wait a minute and try again.");
    if (!resp.ok) return show("Sign-in failed: " + (await errorText(resp)));
    sessionStorage.setItem(KEY, tok);
    $("token").value = "";
    show("");
    await enter(await resp.json());
  }

  async function enter(health) {
    $("signin").hidden = true;
    $("app").hidden = false;
    $("signout").hidden = false;
    renderHealth(health);
    clearInterval(state.timer);
    state.timer = setInterval(() => guard(refreshHealth), 30000);
    await guard(() => loadClips(false));
  }

  function signOut(why) {
    sessionStorage.removeItem(KEY);
    clearInterval(state.timer);
    closePlayer();
    clearList();
    $("filters").reset();
    const select = $("f-camera");
    while (select.options.length > 1) select.remove(1);
    $("labels").replaceChildren();
    $("app").hidden = true;
    $("signout").hidden = true;
    $("signin").hidden = false;
    $("node-name").textContent = "";
    show(why || "Signed out.", why ? "" : "info");
    $("token").focus();
  }

  // ---- health --------------------------------------------------------------------------------------

  async function refreshHealth() {
    renderHealth(await (await api("/api/v1/health")).json());
  }

  function chip(text, kind) {
    const li = document.createElement("li");
    li.className = "chip " + (kind || "");
    li.textContent = text;
    return li;
  }

  function renderHealth(h) {
    const list = $("health-list");
    list.replaceChildren();
    $("node-name").textContent = h.node || "";
    if (h.state) list.append(chip("node " + h.state, h.state === "running" ? "ok" : "warn"));
    const cams = h.cameras || {};
    const select = $("f-camera");
    const known = new Set(Array.from(select.options, (o) => o.value));
    for (const [name, c] of Object.entries(cams)) {
      const st = typeof c === "string" ? c : (c && c.state) || "?";
      const li = chip(`${name}: ${st}`, st === "running" ? "ok" : "bad");
      if (c && c.error) li.title = c.error;
      list.append(li);
      if (!known.has(name)) select.append(new Option(name, name));
    }
    if (h.disk && h.disk.total) {
      const free = h.disk.free / h.disk.total;
      list.append(chip(`disk ${Math.round(free * 100)}% free (${size(h.disk.free)})`, free < 0.1 ? "bad" : free < 0.2 ? "warn" : "ok"));
    }
    if (h.outbox && typeof h.outbox.depth === "number") {
      list.append(chip(`outbox ${h.outbox.depth} queued`, h.outbox.depth > 0 ? "warn" : "ok"));
    }
    if (typeof h.time_ok === "boolean") list.append(chip(h.time_ok ? "clock synced" : "clock NOT synced", h.time_ok ? "ok" : "bad"));
  }

  // ---- clip list -----------------------------------------------------------------------------------

  function clearList() {
    for (const url of state.blobs) URL.revokeObjectURL(url);
    state.blobs = [];
    state.clips.clear();
    state.selected.clear();
    state.after = null;
    $("clips").replaceChildren();
    $("count").textContent = "";
    $("more").hidden = true;
    $("empty").hidden = true;
    updateBundle();
  }

  function query() {
    const q = new URLSearchParams({ limit: String(PAGE) });
    for (const [key, id] of [["since", "f-since"], ["until", "f-until"]]) {
      const v = $(id).value;
      if (v) q.set(key, String(Math.floor(new Date(v).getTime() / 1000)));
    }
    if ($("f-camera").value) q.set("camera", $("f-camera").value);
    const label = $("f-label").value.trim();
    if (label) q.set("label", label);
    return q;
  }

  async function loadClips(append) {
    const q = query();
    if (append && state.after) q.set("after", state.after);
    else clearList();
    const seq = ++state.seq; // a newer Apply wins over an older answer still on its way
    const resp = await api("/api/v1/clips?" + q.toString());
    const rows = await resp.json();
    if (seq !== state.seq) return;
    state.after = resp.headers.get("X-Next-After");
    const list = $("clips");
    for (const rec of rows) {
      state.clips.set(rec.id, rec);
      list.append(renderClip(rec));
      rec.labels.forEach(addLabel);
    }
    $("count").textContent = `(${state.clips.size}${state.after ? "+" : ""})`;
    $("more").hidden = !state.after;
    $("empty").hidden = state.clips.size > 0;
  }

  function addLabel(label) {
    const dl = $("labels");
    if (!Array.from(dl.options).some((o) => o.value === label)) dl.append(new Option(label, label));
  }

  function renderClip(rec) {
    const li = $("clip-tpl").content.firstElementChild.cloneNode(true);
    li.dataset.id = rec.id;
    li.querySelector(".cam").textContent = rec.camera;
    const w = li.querySelector(".when");
    w.textContent = when(rec.start_ts);
    w.title = utcText(rec.start_ts);
    li.querySelector(".dur").textContent = (rec.end_ts - rec.start_ts).toFixed(1) + " s";
    li.querySelector(".size").textContent = size(rec.bytes);
    li.querySelector(".cid").textContent = rec.id;
    const tags = li.querySelector(".labels");
    for (const label of rec.labels) {
      const t = document.createElement("span");
      t.className = "tag";
      t.textContent = label;
      tags.append(t);
    }
    const sel = li.querySelector(".sel");
    sel.checked = state.selected.has(rec.id);
    sel.addEventListener("change", () => {
      if (sel.checked) state.selected.add(rec.id);
      else state.selected.delete(rec.id);
      updateBundle();
    });
    li.querySelector(".thumb").addEventListener("click", () => guard(() => play(rec.id), "Play"));
    li.querySelector(".play").addEventListener("click", () => guard(() => play(rec.id), "Play"));
    li.querySelector(".dl").addEventListener("click", () => guard(() => download(rec.id), "Download"));
    li.querySelector(".hold").addEventListener("click", () => guard(() => toggleHold(rec.id), "Hold"));
    setHeld(li, rec.held);
    const best = (rec.best || [])[0];
    if (best) loadBest(best, li.querySelector(".thumb"), rec.id, rec.best.length);
    else loadThumb(rec.id, li.querySelector(".thumb"));
    return li;
  }

  function setHeld(li, held) {
    li.querySelector(".held-badge").hidden = !held;
    const b = li.querySelector(".hold");
    b.textContent = held ? "Release" : "Hold";
    b.title = held ? "Let retention delete this clip again" : "Keep this clip past retention";
  }

  async function loadThumb(id, box) {
    try {
      const resp = await fetch(`/api/v1/clips/${enc(id)}/thumb.jpg`, { headers: { Authorization: "Bearer " + token() }, credentials: "omit" });
      if (!resp.ok) return; // keep the placeholder
      const url = URL.createObjectURL(await resp.blob());
      state.blobs.push(url);
      const img = document.createElement("img");
      img.alt = "";
      img.src = url;
      box.replaceChildren(img);
    } catch (e) { /* placeholder stays */ }
  }

  // The clip's first object at its best moment, its box drawn on a canvas (no inline style: strict CSP);
  // the first pre-roll frame when the best shot cannot be fetched.
  async function loadBest(best, box, clipId, count) {
    try {
      const resp = await fetch(`/api/v1/best/${enc(best.id)}.jpg`, { headers: { Authorization: "Bearer " + token() }, credentials: "omit" });
      if (!resp.ok) return loadThumb(clipId, box);
      const url = URL.createObjectURL(await resp.blob());
      state.blobs.push(url);
      const img = new Image();
      img.src = url;
      await img.decode();
      const canvas = document.createElement("canvas");
      canvas.width = img.naturalWidth;
      canvas.height = img.naturalHeight;
      canvas.className = "best";
      const ctx = canvas.getContext("2d");
      ctx.drawImage(img, 0, 0);
      const [x1, y1, x2, y2] = best.box;
      ctx.lineWidth = Math.max(2, Math.round(canvas.width / 120));
      ctx.strokeStyle = "#facc15";
      ctx.strokeRect(x1 * canvas.width, y1 * canvas.height, (x2 - x1) * canvas.width, (y2 - y1) * canvas.height);
      canvas.title = `${best.label}: best shot`;
      canvas.setAttribute("role", "img");
      canvas.setAttribute("aria-label", `${best.label}, best shot`);
      box.replaceChildren(canvas);
      if (count > 1) { // more objects in this clip: say how many (their shots are in the meta and the bundle)
        const more = document.createElement("span");
        more.className = "more";
        more.textContent = `+${count - 1}`;
        more.title = `${count} objects with a best shot in this clip`;
        box.append(more);
      }
    } catch (e) { loadThumb(clipId, box); }
  }

  function updateBundle() {
    const b = $("bundle");
    b.textContent = `Evidence bundle (${state.selected.size})`;
    b.disabled = state.selected.size === 0;
  }

  // ---- actions -------------------------------------------------------------------------------------

  // A ticket URL (POST /api/v1/ticket): read-only, for this one clip, short-lived; <video> cannot send a header.
  async function link(id) {
    const path = `/api/v1/clips/${enc(id)}.mp4`;
    const t = await (await api("/api/v1/ticket?path=" + enc(path), { method: "POST" })).json();
    return { url: t.url, download_url: t.url + "&download=1" };
  }

  async function play(id) {
    const l = await link(id);
    const rec = state.clips.get(id);
    state.playing = id;
    state.retried = false;
    document.querySelectorAll(".clip.playing").forEach((el) => el.classList.remove("playing"));
    const li = document.querySelector(`.clip[data-id="${CSS.escape(id)}"]`);
    if (li) li.classList.add("playing");
    $("player-title").textContent = rec ? `${rec.camera} · ${when(rec.start_ts)} · ${rec.labels.join(", ")}` : id;
    $("player").hidden = false;
    const video = $("video");
    video.src = l.url;
    $("player").scrollIntoView({ block: "nearest" });
    video.play().catch(() => { /* the user can press play */ });
  }

  // The ticket expired while paused, or the file is gone: ask for a fresh ticket, check it, and resume once.
  async function onVideoError() {
    const video = $("video");
    if (!state.playing || !video.getAttribute("src")) return;
    if (state.retried) throw new Error("this browser cannot play the clip; download it instead");
    state.retried = true;
    const at = video.currentTime;
    const l = await link(state.playing);
    const head = await fetch(l.url, { method: "HEAD", cache: "no-store", credentials: "omit" });
    if (!head.ok) {
      closePlayer();
      throw new Error(head.status === 404 ? "the clip's file is not on the node" : head.status + " " + head.statusText);
    }
    video.src = l.url;
    video.currentTime = at;
  }

  function closePlayer() {
    const video = $("video");
    video.pause();
    video.removeAttribute("src");
    video.load();
    state.playing = null;
    $("player").hidden = true;
    document.querySelectorAll(".clip.playing").forEach((el) => el.classList.remove("playing"));
  }

  function save(url, name) {
    const a = document.createElement("a");
    a.href = url;
    a.download = name;
    document.body.append(a);
    a.click();
    a.remove();
  }

  async function download(id) {
    const l = await link(id);
    save(l.download_url, id + ".mp4");
  }

  async function bundle() {
    const ids = Array.from(state.selected);
    show(`Building an evidence bundle of ${ids.length} clip(s)…`, "info");
    const resp = await api("/api/v1/bundle", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ ids }),
    });
    const cd = resp.headers.get("Content-Disposition") || "";
    const m = /filename="([^"]+)"/.exec(cd);
    const url = URL.createObjectURL(await resp.blob());
    save(url, m ? m[1] : "edgecam-evidence.zip");
    setTimeout(() => URL.revokeObjectURL(url), 60000);
    show("");
  }

  async function toggleHold(id) {
    const rec = state.clips.get(id);
    const body = await (await api(`/api/v1/clips/${enc(id)}/hold`, { method: rec.held ? "DELETE" : "POST" })).json();
    rec.held = body.held;
    const li = document.querySelector(`.clip[data-id="${CSS.escape(id)}"]`);
    if (li) setHeld(li, rec.held);
  }

  // ---- wiring --------------------------------------------------------------------------------------

  function init() {
    const tz = Intl.DateTimeFormat().resolvedOptions().timeZone || zoneName(new Date());
    document.querySelectorAll(".tz").forEach((el) => { el.textContent = tz; });
    $("signin-form").addEventListener("submit", (ev) => guard(() => signIn(ev)));
    $("signout").addEventListener("click", () => signOut(""));
    $("filters").addEventListener("submit", (ev) => { ev.preventDefault(); guard(() => loadClips(false)); });
    $("f-clear").addEventListener("click", () => {
      $("filters").reset();
      guard(() => loadClips(false));
    });
    $("more").addEventListener("click", () => guard(() => loadClips(true)));
    $("bundle").addEventListener("click", () => guard(bundle, "Evidence bundle"));
    $("player-close").addEventListener("click", closePlayer);
    $("video").addEventListener("error", () => guard(onVideoError, "Play"));
    $("video").addEventListener("loadeddata", () => { state.retried = false; });
    if (token()) {
      guard(async () => enter(await (await api("/api/v1/health")).json()));
    } else {
      $("token").focus();
    }
  }

  init();
})();
