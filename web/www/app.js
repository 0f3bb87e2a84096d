// Mắt Thần browser UI: one page, hash routes, strings from i18n.<lang>.json (vi by default).
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const ROLES = { viewer: 1, reviewer: 2, admin: 3 };

let lang = localStorage.getItem("lang") || "vi";
let strings = {};
let me = null;          // { username, role, csrf, communes }
let cameras = [];       // from /api/cameras
let pageCleanup = [];   // closes sockets and timers of the page being left
let bytesUsed = 0;      // live-view bytes received by this page

function t(key, vars = {}) {
  let s = strings[key] ?? key;
  for (const [k, v] of Object.entries(vars)) s = s.replaceAll(`{${k}}`, v);
  return s;
}
const fmtTime = (iso) => (iso ? new Date(iso).toLocaleString(lang === "vi" ? "vi-VN" : "en-GB") : "");
const typeName = (type) => (strings[`type.${type}`] ? t(`type.${type}`) : type);

async function loadStrings() {
  strings = await (await fetch(`/i18n.${lang}.json`)).json();
  document.documentElement.lang = lang;
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
}

async function api(path, opts = {}) {
  const headers = { ...(opts.headers || {}) };
  if (opts.body !== undefined) headers["Content-Type"] = "application/json";
  if (opts.method && opts.method !== "GET") headers["X-CSRF-Token"] = me?.csrf || "";
  const r = await fetch(path, { ...opts, headers, body: opts.body === undefined ? undefined : JSON.stringify(opts.body) });
  if (r.status === 401) { showLogin(); throw new Error("unauthenticated"); }
  const data = r.headers.get("content-type")?.includes("json") ? await r.json() : null;
  if (!r.ok) throw new Error(data?.error?.message || `HTTP ${r.status}`);
  return data;
}

function can(role) { return me && ROLES[me.role] >= ROLES[role]; }

function showLogin() {
  me = null;
  cleanup();
  $("#login").classList.remove("hidden");
  $("#nav").classList.add("hidden");
  $("#logout").classList.add("hidden");
  $("#health-bar").classList.add("hidden");
  $("#page").innerHTML = "";
  $("#who").textContent = "";
}

function cleanup() {
  for (const f of pageCleanup) try { f(); } catch (e) { /* already closed */ }
  pageCleanup = [];
}

$("#login").onsubmit = async (ev) => {
  ev.preventDefault();
  const r = await fetch("/api/login", { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username: $("#user").value, password: $("#pass").value }) });
  if (!r.ok) { $("#login-err").textContent = r.status === 429 ? t("login.locked") : t("login.bad"); return; }
  $("#pass").value = ""; $("#login-err").textContent = "";
  await start();
};
$("#logout").onclick = async () => {
  try { await api("/api/logout", { method: "POST" }); } catch (e) { /* gone already */ }
  if (push) push.close();
  showLogin();
};
$("#lang").onclick = async () => { lang = lang === "vi" ? "en" : "vi"; localStorage.setItem("lang", lang); await loadStrings(); route(); };
$("#modal-close").onclick = () => closeModal();
function openModal(html) { $("#modal-body").innerHTML = html; $("#modal").classList.remove("hidden"); }
function closeModal() {
  for (const v of document.querySelectorAll("#modal video")) { v.pause(); v.removeAttribute("src"); v.load(); }
  $("#modal").classList.add("hidden"); $("#modal-body").innerHTML = "";
}

// ---- push: new events and camera states ----
let push = null;
function connectPush() {
  if (push) push.close();
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/ws`);
  push = ws;
  ws.onmessage = (ev) => {
    const m = JSON.parse(ev.data);
    if (m.type === "event_start") {
      toast(t("toast.new_event", { type: typeName(m.event.type), camera: m.event.camera_name || m.event.camera }), m.event);
      document.dispatchEvent(new CustomEvent("matthan-event", { detail: m.event }));
    } else if (m.type === "camera_state") {
      const c = cameras.find((x) => x.id === m.camera);
      if (c) c.state = m.state;
      document.dispatchEvent(new CustomEvent("matthan-camera", { detail: m }));
    }
  };
  ws.onclose = () => { if (me && push === ws) setTimeout(connectPush, 3000); };
}

function beep() {
  try {
    const ctx = new (window.AudioContext || window.webkitAudioContext)();
    const o = ctx.createOscillator(); const g = ctx.createGain();
    o.frequency.value = 880; g.gain.value = 0.15; o.connect(g); g.connect(ctx.destination);
    o.start(); o.stop(ctx.currentTime + 0.35);
  } catch (e) { /* no audio device */ }
}

function toast(text, event) {
  const el = document.createElement("div");
  el.className = "toast"; el.textContent = text; el.dataset.event = event?.id || "";
  el.onclick = () => { el.remove(); location.hash = "#/events"; };
  $("#toasts").appendChild(el);
  beep();
  setTimeout(() => el.remove(), 15000);
}

// ---- live view: fragmented MP4 over a WebSocket into Media Source Extensions ----
// A data budget per camera (kbit/s; 0: none), chosen on the live page and kept on this device.
let maxKbps = Number(localStorage.getItem("matthan.max_kbps") || 0);
function playLive(video, camera, stream, onMessage, format = "mp4") {
  const budget = maxKbps > 0 ? `&max_kbps=${maxKbps}` : "";
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/cameras/${encodeURIComponent(camera)}/live?stream=${stream}&format=${format}${budget}`);
  ws.binaryType = "arraybuffer";
  let ms = null, sb = null, queue = [], img = null, fallback = null, lastUrl = null, stopped = false;
  const pump = () => {
    if (!sb || sb.updating || !queue.length || ms.readyState !== "open") return;
    try { sb.appendBuffer(queue.shift()); } catch (e) { queue = []; }
  };
  const keepLive = () => {
    const b = video.buffered;
    if (!sb || !b.length) return;
    const end = b.end(b.length - 1);
    // Live, not a recording: jump to the newest frame when behind (the server skips a lagging
    // socket ahead; this skips the player's own buffer ahead).
    if (video.currentTime < b.start(0) || end - video.currentTime > 0.6) video.currentTime = Math.max(b.start(b.length - 1), end - 0.05);
    if (!sb.updating && end - b.start(0) > 20) sb.remove(b.start(0), end - 5);
    if (video.paused) video.play().catch(() => {});
  };
  ws.onmessage = (ev) => {
    if (typeof ev.data === "string") {
      const m = JSON.parse(ev.data);
      if (m.type !== "init") return;
      if (m.mime === "image/jpeg") {  // the fallback: pictures in an <img> over the video
        img = video.parentElement.querySelector("img.live") || video.insertAdjacentElement("afterend", Object.assign(document.createElement("img"), { className: "live" }));
        video.classList.add("hidden");
        onMessage?.("MJPEG");
        return;
      }
      if (!window.MediaSource || !MediaSource.isTypeSupported(m.mime)) {
        // Debian's Chromium has no H.265 in MSE: ask the server for JPEG pictures instead.
        ws.onclose = null; ws.close();
        fallback = playLive(video, camera, stream, onMessage, "jpeg");
        return;
      }
      queue = []; sb = null;
      const mine = ms = new MediaSource();
      video.src = URL.createObjectURL(mine);
      mine.addEventListener("sourceopen", () => {
        // A newer init or a stopped tile may have replaced this source between the event being
        // queued and run; adding a buffer to a closed source throws.
        if (stopped || ms !== mine || mine.readyState !== "open") return;
        try {
          sb = mine.addSourceBuffer(m.mime);
        } catch (e) { onMessage?.("…"); return; }
        sb.mode = "segments";
        sb.addEventListener("updateend", () => { keepLive(); pump(); });
        pump();
      }, { once: true });
      return;
    }
    bytesUsed += ev.data.byteLength;
    if (img) {
      if (lastUrl) URL.revokeObjectURL(lastUrl);  // the picture shown is decoded already
      lastUrl = URL.createObjectURL(new Blob([ev.data], { type: "image/jpeg" }));
      img.src = lastUrl;
      return;
    }
    queue.push(ev.data);
    if (queue.length > 150) queue.splice(0, queue.length - 150);
    pump();
  };
  ws.onclose = () => onMessage?.("…");
  return () => {
    stopped = true;
    ws.close(); fallback?.();
    if (img) { img.remove(); video.classList.remove("hidden"); }
    if (lastUrl) URL.revokeObjectURL(lastUrl);
    if (video.src) { video.pause(); video.removeAttribute("src"); video.load(); }
  };
}

function updateDataUsed() { $("#data-used").textContent = t("live.data", { mb: (bytesUsed / 1048576).toFixed(1) }); }

async function pageLive(main) {
  const d = await api("/api/cameras");
  cameras = d.cameras;
  const online = cameras.filter((c) => c.state === "online").length;
  const byHamlet = {};
  for (const c of cameras) (byHamlet[c.hamlet || t("live.hamlet_none")] ||= []).push(c);
  const caps = [0, 1000, 256];
  main.innerHTML = `<div class="summary" id="live-summary">${esc(t("live.summary", { on: online, all: cameras.length }))}
    <label class="data-cap">${esc(t("live.cap"))} <select id="data-cap">${caps.map((k) => `<option value="${k}" ${k === maxKbps ? "selected" : ""}>${esc(t(`live.cap_${k}`))}</option>`).join("")}</select></label></div>` +
    Object.entries(byHamlet).map(([h, list]) => `<h2>${esc(h)}</h2><div class="grid">${list.map((c) =>
      `<div class="tile" data-camera="${esc(c.id)}"><video muted playsinline></video>
        <div class="cap"><b>${esc(c.name)}</b><span class="badge ${esc(c.state)}">${esc(t(`state.${c.state}`))}</span>
        <button class="fs">${esc(t("live.full"))}</button></div><div class="msg"></div></div>`).join("")}</div>`).join("");
  const players = new Map();
  const startTile = (tile, stream) => {
    players.get(tile)?.();
    const msg = $(".msg", tile);
    players.set(tile, playLive($("video", tile), tile.dataset.camera, stream, (m) => { msg.textContent = m; }));
  };
  const stopTile = (tile) => { players.get(tile)?.(); players.delete(tile); };
  // Tiles out of view are paused: their sockets closed, nothing downloaded.
  const io = new IntersectionObserver((entries) => {
    for (const e of entries) {
      if (e.target.classList.contains("full")) continue;
      if (e.isIntersecting) startTile(e.target, "sub"); else stopTile(e.target);
    }
  });
  for (const tile of main.querySelectorAll(".tile")) {
    io.observe(tile);
    $(".fs", tile).onclick = () => {
      const full = !tile.classList.contains("full");
      tile.classList.toggle("full", full);
      startTile(tile, full ? "main" : "sub");   // main stream full screen, sub in the grid
    };
  }
  $("#data-cap").onchange = (ev) => {
    maxKbps = Number(ev.target.value);
    localStorage.setItem("matthan.max_kbps", String(maxKbps));
    for (const tile of players.keys()) startTile(tile, tile.classList.contains("full") ? "main" : "sub");
  };
  const onCam = (ev) => {
    const tile = main.querySelector(`.tile[data-camera="${CSS.escape(ev.detail.camera)}"] .badge`);
    if (tile) { tile.className = `badge ${ev.detail.state}`; tile.textContent = t(`state.${ev.detail.state}`); }
  };
  document.addEventListener("matthan-camera", onCam);
  const timer = setInterval(updateDataUsed, 1000);
  pageCleanup.push(() => { io.disconnect(); for (const stop of players.values()) stop(); clearInterval(timer); document.removeEventListener("matthan-camera", onCam); });
}

function eventHtml(e) {
  const review = e.review || { state: "new" };
  return `<div class="event" data-id="${esc(e.id)}">
    ${e.snapshot ? `<img loading="lazy" src="/api/events/${encodeURIComponent(e.id)}/snapshot.jpg" alt="">` : ""}
    <div class="body"><b>${esc(typeName(e.type))}</b>${e.label ? ` (${esc(typeName(e.label))})` : ""} — ${esc(e.camera_name || e.camera)}
      <span class="muted">${esc(e.hamlet || "")}</span><br>
      <span class="num">${esc(fmtTime(e.start))}</span>
      <span class="badge ${esc(review.state)}">${esc(t(`review.${review.state}`))}</span>
      ${review.note ? `<div>${esc(t("events.note"))}: ${esc(review.note)}</div>` : ""}
      ${e.ack ? `<div class="muted ack">${esc(t("events.acked", { who: e.ack.by }))}</div>` : ""}
      <div class="actions">
        ${e.ack ? "" : `<button data-act="ack">${esc(t("events.ack"))}</button>`}
        ${can("reviewer") && e.camera !== "-" ? `<button data-act="play">${esc(t("events.play"))}</button>
          <button data-act="confirmed">${esc(t("events.confirm"))}</button>
          <button data-act="false_alarm">${esc(t("events.false_alarm"))}</button>
          <button data-act="new">${esc(t("events.reset"))}</button>` : ""}
      </div></div></div>`;
}

async function pageEvents(main) {
  const d = await api("/api/cameras"); cameras = d.cameras;
  const types = ["motion", "person", "tamper", "camera_offline", "storage_alarm"];
  main.innerHTML = `<form class="filters" id="ev-filter">
    <label>${esc(t("events.camera"))}<select name="camera"><option value="">${esc(t("events.all"))}</option>
      ${cameras.map((c) => `<option value="${esc(c.id)}">${esc(c.name)}</option>`).join("")}</select></label>
    <label>${esc(t("events.type"))}<select name="type"><option value="">${esc(t("events.all"))}</option>
      ${types.map((x) => `<option value="${x}">${esc(typeName(x))}</option>`).join("")}</select></label>
    <label>${esc(t("events.review"))}<select name="review"><option value="">${esc(t("events.all"))}</option>
      ${["new", "confirmed", "false_alarm"].map((x) => `<option value="${x}">${esc(t(`review.${x}`))}</option>`).join("")}</select></label>
    <label>${esc(t("events.from"))}<input type="datetime-local" name="from"></label>
    <label>${esc(t("events.to"))}<input type="datetime-local" name="to"></label>
    <button class="btn">${esc(t("events.filter"))}</button></form>
    <div id="ev-list"></div><button class="btn hidden" id="ev-more">${esc(t("events.more"))}</button>`;
  let cursor = null;
  const params = () => {
    const f = new FormData($("#ev-filter")); const p = new URLSearchParams();
    for (const k of ["camera", "type", "review"]) if (f.get(k)) p.set(k, f.get(k));
    for (const k of ["from", "to"]) if (f.get(k)) p.set(k, new Date(f.get(k)).toISOString());
    return p;
  };
  const load = async (more) => {
    const p = params(); p.set("limit", "30"); if (more && cursor) p.set("cursor", cursor);
    const r = await api(`/api/events?${p}`);
    cursor = r.next_cursor;
    const list = $("#ev-list");
    if (!more) list.innerHTML = r.events.length ? "" : `<p>${esc(t("events.none"))}</p>`;
    list.insertAdjacentHTML("beforeend", r.events.map(eventHtml).join(""));
    $("#ev-more").classList.toggle("hidden", !cursor);
  };
  $("#ev-filter").onsubmit = (ev) => { ev.preventDefault(); load(false); };
  $("#ev-more").onclick = () => load(true);
  $("#ev-list").onclick = async (ev) => {
    const btn = ev.target.closest("button"); if (!btn) return;
    const card = btn.closest(".event"); const id = card.dataset.id; const act = btn.dataset.act;
    try {
      if (act === "play") {
        openModal(`<video id="clip" controls autoplay muted src="/api/events/${encodeURIComponent(id)}/clip.mp4"></video>`);
        return;
      }
      let e;
      if (act === "ack") e = await api(`/api/events/${encodeURIComponent(id)}/ack`, { method: "POST", body: {} });
      else {
        const note = act === "new" ? "" : (prompt(t("events.note")) ?? "");
        e = await api(`/api/events/${encodeURIComponent(id)}/review`, { method: "POST", body: { state: act, note } });
      }
      card.outerHTML = eventHtml(e);
    } catch (err) { alert(t("common.error", { message: err.message })); }
  };
  const onEvent = (ev) => { if (!cursor || $("#ev-list .event")) load(false); void ev; };
  document.addEventListener("matthan-event", onEvent);
  pageCleanup.push(() => document.removeEventListener("matthan-event", onEvent));
  await load(false);
}

async function pagePlayback(main) {
  const d = await api("/api/cameras"); cameras = d.cameras;
  const today = new Date(); const pad = (n) => String(n).padStart(2, "0");
  const dayText = `${today.getFullYear()}-${pad(today.getMonth() + 1)}-${pad(today.getDate())}`;
  main.innerHTML = `<form class="filters" id="pb-form">
    <label>${esc(t("playback.camera"))}<select name="camera">${cameras.map((c) => `<option value="${esc(c.id)}">${esc(c.name)}</option>`).join("")}</select></label>
    <label>${esc(t("playback.day"))}<input type="date" name="day" value="${dayText}"></label>
    <label>${esc(t("playback.span"))}<select name="span">${[[0.25, "15 min"], [1, "1 h"], [6, "6 h"], [24, "24 h"]].map(([h, label]) => `<option value="${h}"${h === 1 ? " selected" : ""}>${label}</option>`).join("")}</select></label></form>
    <div class="legend"><span style="background:#1f8a4c"></span>${esc(t("playback.recorded"))}<span style="background:#b42318"></span>${esc(t("playback.gap"))}<span style="background:#b54708"></span>${esc(t("playback.event"))}</div>
    <div class="timeline" id="pb-line"><div class="cursor" id="pb-cursor"></div></div><div class="ticks" id="pb-ticks"></div>
    <div id="pb-at"></div><video id="pb-video" controls muted playsinline style="width:100%;max-height:70vh;background:#000"></video>`;
  let from = 0, to = 0, segments = [];
  const line = $("#pb-line");
  const pos = (ms) => `${(100 * (ms - from)) / (to - from)}%`;
  const draw = async () => {
    const f = new FormData($("#pb-form"));
    // A window of the chosen span: ending now for today, else the day's end.
    const dayStart = new Date(`${f.get("day")}T00:00:00`).getTime();
    const span = Number(f.get("span")) * 3600000;
    to = Math.min(dayStart + 86400000, Date.now() + 60000);
    from = Math.max(dayStart, to - span);
    const cam = f.get("camera");
    const q = `from=${encodeURIComponent(new Date(from).toISOString())}&to=${encodeURIComponent(new Date(to).toISOString())}`;
    const rec = await api(`/api/cameras/${encodeURIComponent(cam)}/recordings?${q}`);
    segments = rec.segments.filter((s) => s.stream === "main").map((s) => [Date.parse(s.from), s.state === "open" ? Date.now() : Date.parse(s.to)]);
    line.innerHTML = `<div class="cursor" id="pb-cursor"></div>` +
      segments.map(([a, b]) => `<div class="seg" style="left:${pos(Math.max(a, from))};width:${pos(from + Math.min(b, to) - Math.max(a, from))}"></div>`).join("") +
      rec.gaps.filter((g) => g.stream === "main").map((g) => `<div class="gap" title="${esc(g.reason)}" style="left:${pos(Math.max(Date.parse(g.from), from))};width:${pos(from + Math.min(Date.parse(g.to), to) - Math.max(Date.parse(g.from), from))}"></div>`).join("") +
      (rec.events || []).map((e) => `<div class="ev" title="${esc(typeName(e.type))}" style="left:${pos(Date.parse(e.from))}"></div>`).join("");
    const hhmm = (ms) => new Date(ms).toLocaleTimeString(lang === "vi" ? "vi-VN" : "en-GB", { hour: "2-digit", minute: "2-digit" });
    $("#pb-ticks").innerHTML = [0, 0.25, 0.5, 0.75, 1].map((x) => `<span style="left:${100 * x}%">${hhmm(from + x * (to - from))}</span>`).join("");
  };
  // Click or drag on the timeline: play ten minutes of recording from there.
  const play = (ms) => {
    $("#pb-cursor").style.left = pos(ms);
    const cam = new FormData($("#pb-form")).get("camera");
    if (!segments.some(([a, b]) => ms >= a - 1000 && ms < b)) { $("#pb-at").textContent = t("playback.nothing"); return; }
    $("#pb-at").textContent = t("playback.at", { time: fmtTime(new Date(ms).toISOString()) });
    const v = $("#pb-video");
    v.src = `/api/cameras/${encodeURIComponent(cam)}/clip.mp4?from=${encodeURIComponent(new Date(ms).toISOString())}&to=${encodeURIComponent(new Date(Math.min(ms + 600000, Date.now())).toISOString())}&stream=auto`;
    v.play().catch(() => {});
  };
  let dragging = false;
  const at = (ev) => from + ((ev.clientX - line.getBoundingClientRect().left) / line.clientWidth) * (to - from);
  line.onpointerdown = (ev) => { dragging = true; $("#pb-cursor").style.left = pos(at(ev)); };
  line.onpointermove = (ev) => { if (dragging) $("#pb-cursor").style.left = pos(at(ev)); };
  line.onpointerup = (ev) => { dragging = false; play(at(ev)); };
  $("#pb-form").onchange = draw;
  await draw();
}

async function pageCameras(main) {
  const d = await api("/api/cameras"); cameras = d.cameras;
  main.innerHTML = `<table><thead><tr><th>${esc(t("cameras.name"))}</th><th class="wide">${esc(t("cameras.hamlet"))}</th>
    <th>${esc(t("cameras.state"))}</th><th class="num">${esc(t("cameras.uptime24"))}</th><th class="num wide">${esc(t("cameras.uptime7"))}</th>
    <th class="num wide">${esc(t("cameras.fps"))}</th></tr></thead><tbody>${cameras.map((c) => `<tr data-camera="${esc(c.id)}">
    <td><b>${esc(c.name)}</b><br><small>${esc(c.id)}</small></td><td class="wide">${esc(c.hamlet)}</td>
    <td><span class="badge ${esc(c.state)}">${esc(t(`state.${c.state}`))}</span>${c.last_error ? `<div class="err">${esc(c.last_error)}</div>` : ""}</td>
    <td class="num up24">…</td><td class="num wide up7">…</td><td class="num wide">${(c.fps_analysed || 0).toFixed(1)}</td></tr>`).join("")}</tbody></table>`;
  for (const c of cameras) {
    api(`/api/cameras/${encodeURIComponent(c.id)}/uptime`).then((u) => {
      const row = main.querySelector(`tr[data-camera="${CSS.escape(c.id)}"]`);
      const f = (x) => (x == null ? "—" : `${(100 * x).toFixed(1)} %`);
      $(".up24", row).textContent = f(u.h24.uptime); $(".up7", row).textContent = f(u.d7.uptime);
    }).catch(() => {});
  }
}

async function pageExports(main) {
  const d = await api("/api/cameras"); cameras = d.cameras;
  const local = (ms) => { const x = new Date(ms - new Date().getTimezoneOffset() * 60000); return x.toISOString().slice(0, 19); };
  main.innerHTML = `<h2>${esc(t("exports.new"))}</h2><form class="filters" id="ex-form">
    <label>${esc(t("exports.cameras"))}<select name="camera" multiple size="3">${cameras.map((c) => `<option value="${esc(c.id)}">${esc(c.name)}</option>`).join("")}</select></label>
    <label>${esc(t("exports.from"))}<input type="datetime-local" step="1" name="from" value="${local(Date.now() - 600000)}"></label>
    <label>${esc(t("exports.to"))}<input type="datetime-local" step="1" name="to" value="${local(Date.now())}"></label>
    <label>${esc(t("exports.reason"))}<input name="reason" required></label>
    <label>${esc(t("exports.unit"))}<input name="requesting_unit"></label>
    <label>${esc(t("exports.officer"))}<input name="officer"></label>
    <button class="btn" id="ex-go">${esc(t("exports.start"))}</button></form><div class="err" id="ex-err"></div>
    <table><thead><tr><th>ID</th><th>${esc(t("exports.created"))}</th><th>${esc(t("exports.cameras"))}</th><th>${esc(t("exports.state"))}</th>
    <th>${esc(t("exports.progress"))}</th><th>${esc(t("exports.files"))}</th></tr></thead><tbody id="ex-rows"></tbody></table>`;
  const refresh = async () => {
    const r = await api("/api/exports");
    $("#ex-rows").innerHTML = r.exports.map((x) => `<tr data-export="${esc(x.id)}" data-state="${esc(x.state)}"><td><small>${esc(x.id)}</small></td><td>${esc(fmtTime(x.created))}</td>
      <td>${esc((x.cameras || []).join(", "))}</td><td>${esc(strings[`exports.state.${x.state}`] ? t(`exports.state.${x.state}`) : x.state)}${x.error ? `<div class="err">${esc(x.error)}</div>` : ""}</td>
      <td><progress max="1" value="${x.progress}"></progress> ${(100 * x.progress).toFixed(0)} %</td>
      <td>${x.state === "done" ? [...(x.cameras || []).map((c) => `${c}.mp4`), "manifest.json", "manifest.json.sig", "SHA256SUMS"].map((f) =>
        `<a href="/api/exports/${encodeURIComponent(x.id)}/files/${encodeURIComponent(f)}" download>${esc(f)}</a>`).join("<br>") +
        `<br><a class="record" href="/api/exports/${encodeURIComponent(x.id)}/record?format=pdf" download>${esc(t("exports.record"))}</a>` : ""}</td></tr>`).join("");
  };
  $("#ex-form").onsubmit = async (ev) => {
    ev.preventDefault();
    const f = new FormData(ev.target);
    try {
      await api("/api/exports", { method: "POST", body: { cameras: f.getAll("camera"), from: new Date(f.get("from")).toISOString(),
        to: new Date(f.get("to")).toISOString(), reason: f.get("reason"), requesting_unit: f.get("requesting_unit"), officer: f.get("officer") } });
      $("#ex-err").textContent = "";
      refresh();
    } catch (err) { $("#ex-err").textContent = t("common.error", { message: err.message }); }
  };
  await refresh();
  const timer = setInterval(refresh, 1500);
  pageCleanup.push(() => clearInterval(timer));
}

// The organisation (communes, former names, hamlets) and the cameras' inventory, as the admin
// edits them: saved by PUT /api/organisation, which checks them as the config is checked.
function orgHtml(org) {
  const lines = (items, f) => items.map(f).join("\n");
  const commune = (c, i) => `<fieldset class="org-commune" data-i="${i}"><legend>${esc(t("org.commune"))} ${esc(c.code || "")}</legend>
    <label>${esc(t("org.code"))}<input name="code" value="${esc(c.code)}" required></label>
    <label>${esc(t("org.name"))}<input name="name" value="${esc(c.name)}" required></label>
    <label>${esc(t("org.model"))}<input name="model" value="${esc(c.model)}"></label>
    <label>${esc(t("org.hamlets"))}<textarea name="hamlets" rows="3">${esc(lines(c.hamlets || [], (h) => `${h.code}: ${h.name}`))}</textarea></label>
    <label>${esc(t("org.former"))}<textarea name="former" rows="2">${esc(lines(c.former || [], (f) => `${f.code}; ${f.name}; ${f.until}`))}</textarea></label></fieldset>`;
  orgHtml.commune = commune;
  return `<form id="org-form"><div class="filters"><label>${esc(t("org.province_code"))}<input name="province_code" value="${esc(org.province.code)}"></label>
    <label>${esc(t("org.province"))}<input name="province_name" value="${esc(org.province.name)}"></label></div>
    <div id="org-communes">${org.communes.map(commune).join("")}</div>
    <button type="button" class="btn" id="org-add">${esc(t("org.add_commune"))}</button>
    <table><thead><tr><th>Camera</th><th>${esc(t("org.model_cam"))}</th><th>${esc(t("org.owner"))}</th><th>${esc(t("org.installed"))}</th>
    <th>${esc(t("org.funding"))}</th><th class="wide">${esc(t("org.lat"))}</th><th class="wide">${esc(t("org.lon"))}</th></tr></thead>
    <tbody>${org.cameras.map((c) => `<tr data-camera="${esc(c.id)}"><td>${esc(c.name)}<br><small>${esc(c.commune)} / ${esc(c.hamlet)}</small></td>
      <td><input name="model" value="${esc(c.model)}"></td>
      <td><select name="owner">${["model", "household", "business", "agency"].map((o) => `<option value="${o}" ${o === c.owner ? "selected" : ""}>${esc(t(`owner.${o}`))}</option>`).join("")}</select></td>
      <td><input type="date" name="installed" value="${esc(c.installed)}"></td><td><input name="funding" value="${esc(c.funding)}"></td>
      <td class="wide"><input name="lat" size="8" value="${c.lat ?? ""}"></td><td class="wide"><input name="lon" size="8" value="${c.lon ?? ""}"></td></tr>`).join("")}</tbody></table>
    <button class="btn" id="org-save">${esc(t("common.save"))}</button> <span id="org-msg"></span></form>`;
}

function orgFromForm(form) {
  const pairs = (text, sep, keys) => text.split("\n").map((l) => l.trim()).filter(Boolean).map((l) => {
    const parts = l.split(sep).map((p) => p.trim());
    return Object.fromEntries(keys.map((k, i) => [k, parts[i] ?? ""]));
  });
  const communes = [...form.querySelectorAll(".org-commune")].map((f) => ({
    code: $("[name=code]", f).value.trim(), name: $("[name=name]", f).value.trim(), model: $("[name=model]", f).value.trim(),
    hamlets: pairs($("[name=hamlets]", f).value, ":", ["code", "name"]),
    former: pairs($("[name=former]", f).value, ";", ["code", "name", "until"]),
  }));
  const cameras = {};
  for (const row of form.querySelectorAll("tr[data-camera]")) {
    const v = (n) => $(`[name=${n}]`, row).value.trim();
    const num = (n) => (v(n) === "" ? null : Number(v(n)));
    cameras[row.dataset.camera] = { model: v("model"), owner: v("owner"), installed: v("installed") || null, funding: v("funding"), lat: num("lat"), lon: num("lon") };
  }
  return { organisation: { province: { code: form.province_code.value.trim(), name: form.province_name.value.trim() }, communes }, cameras };
}

// Cameras as the admin manages them: connection settings (passwords write-only), saved at once,
// applied by a restart in place.
const CAM_FIELDS = ["name", "commune", "hamlet", "site", "brand", "host", "port", "channel", "username", "password", "main_url", "sub_url", "transport", "analysis_fps"];
const BRANDS = ["generic", "hikvision", "dahua", "kbvision", "imou", "ezviz", "uniview", "xmeye"];
function cameraFormHtml(c) {
  const add = !c;
  c ||= { brand: "generic", port: 554, channel: 1, transport: "tcp", analysis_fps: 5, enabled: true };
  const field = (n, type = "text", extra = "") => `<label>${esc(t(`cams.${n}`))}<input name="${n}" type="${type}" value="${esc(n === "password" ? "" : (c[n] ?? ""))}" ${extra}></label>`;
  return `<form id="cam-form" class="filters" data-id="${esc(c.id || "")}"><h3>${esc(add ? t("cams.add") : `${t("cams.edit")} ${c.id}`)}</h3>
    ${add ? field("id", "text", 'required pattern="[a-z0-9][a-z0-9_\\-]{0,63}"') : ""}${field("name")}${field("commune")}${field("hamlet")}${field("site")}
    <label>${esc(t("cams.brand"))}<select name="brand">${BRANDS.map((b) => `<option ${b === c.brand ? "selected" : ""}>${b}</option>`).join("")}</select></label>
    ${field("host")}${field("port", "number")}${field("channel", "number")}${field("username")}
    ${field("password", "password", `placeholder="${esc(c.password_set ? t("cams.password_keep") : "")}" autocomplete="new-password"`)}
    ${field("main_url", "text", 'class="url"')}${field("sub_url", "text", 'class="url"')}
    <label>${esc(t("cams.transport"))}<select name="transport">${["tcp", "udp"].map((x) => `<option ${x === c.transport ? "selected" : ""}>${x}</option>`).join("")}</select></label>
    ${field("analysis_fps", "number", 'step="0.5" min="0.5" max="60"')}
    <label><input type="checkbox" name="enabled" ${c.enabled ? "checked" : ""}> ${esc(t("cams.enabled"))}</label>
    <button class="btn" id="cam-save">${esc(t("common.save"))}</button><div class="err" id="cam-err"></div></form>`;
}

function cameraFromForm(form, before) {
  const out = {};
  if (!before) out.id = form.id.value.trim();
  for (const n of CAM_FIELDS) {
    let v = form[n].value.trim();
    if (n === "password" && v === "") continue;  // blank: keep the one set
    if (["port", "channel", "analysis_fps"].includes(n)) v = v === "" ? null : Number(v);
    else if (v === "") v = null;
    if (before && (before[n] ?? null) === v) continue;  // only what changed
    if (!before && v === null) continue;
    out[n] = v;
  }
  if (!before || before.enabled !== form.enabled.checked) out.enabled = form.enabled.checked;
  return out;
}

async function restartServer(msg) {
  if (!confirm(t("cams.restart_confirm"))) return;
  await api("/api/admin/restart", { method: "POST", body: { confirm: true } });
  msg.textContent = t("cams.restarting");
  // The server stops, starts again with the saved settings and keeps the sessions.
  await new Promise((r) => setTimeout(r, 1500));
  for (let i = 0; i < 60; ++i) {
    try { if ((await fetch("/healthz")).ok) break; } catch (e) { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 1000));
  }
  route();
}

async function pageAdmin(main) {
  const [users, audit, org, cams] = await Promise.all([api("/api/users"), api("/api/audit?limit=200"), api("/api/organisation"), api("/api/admin/cameras")]);
  const roleSelect = (u) => `<select name="role">${["viewer", "reviewer", "admin"].map((r) => `<option value="${r}" ${r === u.role ? "selected" : ""}>${esc(t(`role.${r}`))}</option>`).join("")}</select>`;
  main.innerHTML = `<h2>${esc(t("admin.users"))}</h2><table id="user-table"><thead><tr><th>${esc(t("login.user"))}</th><th>${esc(t("admin.role"))}</th><th>${esc(t("admin.communes"))}</th><th>${esc(t("admin.cameras"))}</th><th>${esc(t("admin.disabled"))}</th><th></th></tr></thead>
    <tbody>${users.users.map((u) => `<tr data-user="${esc(u.username)}"><td>${esc(u.username)}</td><td>${roleSelect(u)}</td>
    <td><input name="communes" size="10" value="${esc((u.communes || []).join(", "))}" placeholder="*"></td>
    <td><input name="cameras" size="10" value="${esc((u.cameras || []).join(", "))}"></td><td><input type="checkbox" name="disabled" ${u.disabled ? "checked" : ""}></td>
    <td><button class="btn" data-act="save-user">${esc(t("common.save"))}</button> <button class="btn" data-act="reset">${esc(t("admin.reset"))}</button>
    <button class="btn" data-act="unlock">${esc(t("admin.unlock"))}</button></td></tr>`).join("")}</tbody></table><div id="user-msg"></div>
    <h2>${esc(t("admin.add"))}</h2><form class="filters" id="user-form">
    <label>${esc(t("login.user"))}<input name="username" required></label><label>${esc(t("login.pass"))}<input name="password" type="password" required></label>
    <label>${esc(t("admin.role"))}<select name="role">${["viewer", "reviewer", "admin"].map((r) => `<option value="${r}">${esc(t(`role.${r}`))}</option>`).join("")}</select></label>
    <label>${esc(t("admin.communes"))}<input name="communes"></label><label>${esc(t("admin.cameras"))}<input name="cameras"></label>
    <button class="btn">${esc(t("common.save"))}</button></form><div class="err" id="user-err"></div>
    <h2>${esc(t("cams.title"))}</h2>
    <div id="cam-restart-bar" class="${cams.restart_needed ? "warn-bar" : "hidden"}">${esc(t("cams.restart_needed"))}
      <button class="btn" id="cam-restart">${esc(t("cams.restart"))}</button> <span id="cam-restart-msg"></span></div>
    <table id="cam-admin"><thead><tr><th>Camera</th><th>${esc(t("cams.commune"))} / ${esc(t("cams.hamlet"))}</th><th class="wide">${esc(t("cams.main_url"))}</th><th>${esc(t("cams.enabled"))}</th><th></th></tr></thead>
    <tbody>${cams.cameras.map((c) => `<tr data-cam="${esc(c.id)}"><td><b>${esc(c.id)}</b><br><small>${esc(c.name)}</small></td><td>${esc(c.commune)} / ${esc(c.hamlet)}</td>
      <td class="wide"><small>${esc(c.main_url)}</small></td><td>${c.enabled ? "✓" : "—"}${c.restart_needed ? ` <span class="badge connecting">${esc(t("cams.pending"))}</span>` : ""}</td>
      <td><button class="btn" data-act="cam-edit">${esc(t("cams.edit"))}</button> <button class="btn" data-act="cam-remove">${esc(t("cams.remove"))}</button></td></tr>`).join("")}
      ${cams.removed_until_restart.map((id) => `<tr class="removed"><td><s>${esc(id)}</s></td><td colspan="4">${esc(t("cams.removed"))}</td></tr>`).join("")}</tbody></table>
    <button class="btn" id="cam-add">${esc(t("cams.add"))}</button>
    <h2>${esc(t("org.title"))}</h2>${orgHtml(org)}
    <h2>${esc(t("admin.audit"))}</h2><p>${audit.chain_ok ? esc(t("admin.chain_ok")) : `<span class="err">${esc(t("admin.chain_bad", { error: audit.chain_error }))}</span>`}</p>
    <table><thead><tr><th>#</th><th>${esc(t("admin.at"))}</th><th>${esc(t("admin.actor"))}</th><th>${esc(t("admin.action"))}</th><th>${esc(t("admin.target"))}</th></tr></thead>
    <tbody>${audit.entries.map((a) => `<tr><td>${a.seq}</td><td>${esc(fmtTime(a.at))}</td><td>${esc(a.actor)}</td><td>${esc(a.action)}</td><td>${esc(a.target)}</td></tr>`).join("")}</tbody></table>`;
  const say = (el, text, bad) => { el.className = bad ? "err" : ""; el.textContent = text; };
  const list = (text) => String(text || "").split(",").map((x) => x.trim()).filter(Boolean);
  main.onclick = async (ev) => {
    const btn = ev.target.closest("button[data-act]"); if (!btn) return;
    const act = btn.dataset.act;
    const row = btn.closest("tr");
    try {
      if (act === "unlock" || act === "save-user" || act === "reset") {
        const name = row.dataset.user, url = `/api/users/${encodeURIComponent(name)}`;
        if (act === "unlock") await api(`${url}/unlock`, { method: "POST", body: {} });
        if (act === "save-user") {
          await api(url, { method: "PATCH", body: { role: $("[name=role]", row).value, disabled: $("[name=disabled]", row).checked,
            communes: list($("[name=communes]", row).value), cameras: list($("[name=cameras]", row).value) } });
        }
        if (act === "reset") {
          const pw = prompt(t("admin.reset_prompt", { user: name }));
          if (!pw) return;
          await api(url, { method: "PATCH", body: { password: pw } });
        }
        say($("#user-msg"), `${name}: ${t("org.saved")}`);
        return;
      }
      const cam = cams.cameras.find((c) => c.id === row?.dataset.cam);
      if (act === "cam-edit") { openCameraForm(cam); return; }
      if (act === "cam-remove" && confirm(t("cams.remove_confirm", { id: cam.id }))) {
        await api(`/api/admin/cameras/${encodeURIComponent(cam.id)}`, { method: "DELETE" });
        route();
      }
    } catch (err) { say(act.startsWith("cam") ? $("#cam-restart-msg") : $("#user-msg"), t("common.error", { message: err.message }), true); }
  };
  const openCameraForm = (cam) => {
    openModal(cameraFormHtml(cam));
    $("#cam-form").onsubmit = async (ev) => {
      ev.preventDefault();
      try {
        if (cam) await api(`/api/admin/cameras/${encodeURIComponent(cam.id)}`, { method: "PATCH", body: cameraFromForm(ev.target, cam) });
        else await api("/api/admin/cameras", { method: "POST", body: cameraFromForm(ev.target, null) });
        closeModal(); route();
      } catch (err) { $("#cam-err").textContent = t("common.error", { message: err.message }); }
    };
  };
  $("#cam-add").onclick = () => openCameraForm(null);
  $("#cam-restart").onclick = () => restartServer($("#cam-restart-msg")).catch((err) => say($("#cam-restart-msg"), t("common.error", { message: err.message }), true));
  $("#org-add").onclick = () => {
    const n = document.querySelectorAll(".org-commune").length;
    $("#org-communes").insertAdjacentHTML("beforeend", orgHtml.commune({ code: "", name: "", model: "", hamlets: [], former: [] }, n));
  };
  $("#org-form").onsubmit = async (ev) => {
    ev.preventDefault();
    try {
      await api("/api/organisation", { method: "PUT", body: orgFromForm(ev.target) });
      $("#org-msg").className = ""; $("#org-msg").textContent = t("org.saved");
    } catch (err) { $("#org-msg").className = "err"; $("#org-msg").textContent = t("common.error", { message: err.message }); }
  };
  $("#user-form").onsubmit = async (ev) => {
    ev.preventDefault();
    const f = new FormData(ev.target);
    try {
      await api("/api/users", { method: "POST", body: { username: f.get("username"), password: f.get("password"), role: f.get("role"),
        communes: list(f.get("communes")), cameras: list(f.get("cameras")) } });
      route();
    } catch (err) { $("#user-err").textContent = t("common.error", { message: err.message }); }
  };
}

// One event (the link in an alert message): its snapshot, clip and the acknowledge button.
async function pageEvent(main, id) {
  const e = await api(`/api/events/${encodeURIComponent(id)}`);
  main.innerHTML = `<div id="ev-list">${eventHtml(e)}</div>`;
  $("#ev-list").onclick = async (ev) => {
    const btn = ev.target.closest("button"); if (!btn) return;
    const act = btn.dataset.act;
    try {
      if (act === "play") { openModal(`<video id="clip" controls autoplay muted src="/api/events/${encodeURIComponent(id)}/clip.mp4"></video>`); return; }
      const next = act === "ack" ? await api(`/api/events/${encodeURIComponent(id)}/ack`, { method: "POST", body: {} })
        : await api(`/api/events/${encodeURIComponent(id)}/review`, { method: "POST", body: { state: act, note: act === "new" ? "" : (prompt(t("events.note")) ?? "") } });
      $("#ev-list").innerHTML = eventHtml(next);
    } catch (err) { alert(t("common.error", { message: err.message })); }
  };
}

// Reports: the operation report for a commune and period, drawn from its JSON, with the
// printable and spreadsheet forms one click away.
function barsSvg(items, max, mark) {
  const row = 22, left = 150, width = 360;
  return `<svg class="bars" viewBox="0 0 ${left + width + 70} ${row * items.length + 6}" role="img">${items.map(([label, value, text], i) => {
    const w = max > 0 ? Math.round(width * Math.min(1, Math.max(0, value / max))) : 0;
    return `<text x="${left - 6}" y="${i * row + 16}" text-anchor="end">${esc(label)}</text>
      <rect x="${left}" y="${i * row + 4}" width="${w}" height="${row - 7}" class="${mark && value < mark ? "bad" : "ok"}"></rect>
      <text x="${left + w + 4}" y="${i * row + 16}">${esc(text)}</text>`;
  }).join("")}</svg>`;
}

async function pageReports(main) {
  const org = await api("/api/organisation");
  const communes = org.communes.length ? org.communes.map((c) => [c.code, c.name])
    : [...new Set(org.cameras.map((c) => c.commune).filter(Boolean))].map((c) => [c, c]);
  // Days are the server's local days (its time zone), whatever the browser's zone.
  const [ty, tm, td] = new Intl.DateTimeFormat("en-CA", { timeZone: org.time_zone || undefined }).format(new Date()).split("-").map(Number);
  const day = (y, m, d) => new Date(Date.UTC(y, m - 1, d)).toISOString().slice(0, 10);
  const q0 = Math.floor((tm - 1) / 3) * 3 + 1;  // first month of this quarter
  const presets = {
    month: [day(ty, tm - 1, 1), day(ty, tm, 0)],
    quarter: [day(ty, q0 - 3, 1), day(ty, q0, 0)],
    year: [day(ty - 1, 1, 1), day(ty - 1, 12, 31)],
    two_years: [day(ty - 2, tm, td + 1), day(ty, tm, td)],
  };
  main.innerHTML = `<form class="filters" id="rp-form">
    <label>${esc(t("reports.commune"))}<select name="commune">${communes.map(([code, name]) => `<option value="${esc(code)}">${esc(name)}</option>`).join("")}</select></label>
    <label>${esc(t("reports.period"))}<select name="preset">${Object.keys(presets).map((k) => `<option value="${k}">${esc(t(`reports.preset.${k}`))}</option>`).join("")}</select></label>
    <label>${esc(t("reports.from"))}<input type="date" name="from" required></label>
    <label>${esc(t("reports.to"))}<input type="date" name="to" required></label>
    <button class="btn" id="rp-go">${esc(t("reports.show"))}</button></form>
    <div id="rp-status" class="muted-dark"></div><div id="rp-body"></div>`;
  const form = $("#rp-form");
  const applyPreset = () => { const [a, b] = presets[form.preset.value]; form.from.value = a; form.to.value = b; };
  form.preset.onchange = applyPreset;
  applyPreset();
  form.onsubmit = async (ev) => {
    ev.preventDefault();
    const q = `commune=${encodeURIComponent(form.commune.value)}&from=${form.from.value}&to=${form.to.value}`;
    $("#rp-status").textContent = t("reports.building");
    $("#rp-body").innerHTML = "";
    try {
      const r = await api(`/api/reports/operation?${q}&format=json`);
      $("#rp-status").textContent = "";
      const pct = (x) => (x == null ? "—" : `${(100 * x).toFixed(2)} %`);
      const hours = (s) => (s / 3600).toFixed(1);
      const total = r.totals, prev = r.previous;
      const card = (label, value, before) => `<div class="card"><div class="muted-dark">${esc(label)}</div><b>${esc(value)}</b>${before != null ? `<small>${esc(t("reports.previous"))}: ${esc(before)}</small>` : ""}</div>`;
      $("#rp-body").innerHTML = `<div class="downloads">${["pdf", "xlsx", "csv", "html"].map((f) =>
          `<a class="btn" href="/api/reports/operation?${q}&format=${f}" ${f === "html" ? 'target="_blank"' : "download"}>${esc(t(`reports.as.${f}`))}</a>`).join(" ")}</div>
        <div class="cards">${card(t("reports.cameras"), `${r.online_at_end}/${r.cameras.length} ${t("reports.online_end")}`)}
          ${card(t("reports.uptime"), pct(total.uptime), pct(prev.uptime))}
          ${card(t("reports.coverage"), pct(r.coverage))}
          ${card(t("reports.not_monitored"), `${hours(r.server_not_monitored_s)} h`)}
          ${card(t("reports.events"), total.events, prev.events)}
          ${card(t("reports.confirmed"), `${total.confirmed} / ${total.false_alarms}`, `${prev.confirmed} / ${prev.false_alarms}`)}
          ${card(t("reports.extractions"), total.extractions, prev.extractions)}
          ${card(t("reports.cases"), `${total.cases} (${total.cases_helped} ${t("reports.helped")})`, `${prev.cases} (${prev.cases_helped})`)}</div>
        <h2>${esc(t("reports.uptime_by_camera"))}</h2>
        ${barsSvg(r.cameras.map((c) => [c.name, c.uptime ?? 0, pct(c.uptime)]), 1, r.repair_below)}
        <h2>${esc(t("reports.events_by_week"))}</h2>
        ${barsSvg(r.events_by_week.map((w) => [w.week, w.events, String(w.events)]), Math.max(1, ...r.events_by_week.map((w) => w.events)), 0)}
        <h2>${esc(t("reports.camera_table"))}</h2>
        <table><thead><tr><th>${esc(t("cameras.name"))}</th><th class="wide">${esc(t("cameras.hamlet"))}</th><th class="num">${esc(t("reports.uptime"))}</th>
          <th class="num wide">${esc(t("reports.not_monitored"))}</th><th class="num">${esc(t("reports.coverage"))}</th><th class="num">${esc(t("reports.events"))}</th><th>${esc(t("reports.state_end"))}</th></tr></thead>
        <tbody>${r.cameras.map((c) => `<tr class="${r.repair.includes(c.id) ? "repair" : ""}"><td>${esc(c.name)}</td><td class="wide">${esc(c.hamlet_name)}</td>
          <td class="num">${pct(c.uptime)}</td><td class="num wide">${hours(c.not_monitored_s)} h</td><td class="num">${pct(c.coverage)}</td><td class="num">${c.events}</td>
          <td>${c.state_at_end === "not_monitored" ? esc(t("reports.not_monitored")) : `<span class="badge ${esc(c.state_at_end)}">${esc(t(`state.${c.state_at_end}`))}</span>`}</td></tr>`).join("")}</tbody></table>
        <p>${esc(t("reports.repair", { n: r.repair.length, pct: Math.round(100 * r.repair_below) }))}</p>`;
    } catch (err) { $("#rp-status").textContent = t("common.error", { message: err.message }); }
  };
}

// Cases: open one, set its status and outcome, link the events and exports that served it.
const CATEGORIES = ["theft", "assault", "public_disorder", "traffic_accident", "environment", "drugs", "other"];
async function pageCases(main) {
  const org = await api("/api/organisation");
  const communes = org.communes.length ? org.communes.map((c) => [c.code, c.name])
    : [...new Set(org.cameras.map((c) => c.commune).filter(Boolean))].map((c) => [c, c]);
  const local = (ms) => { const x = new Date(ms - new Date().getTimezoneOffset() * 60000); return x.toISOString().slice(0, 16); };
  main.innerHTML = `<h2>${esc(t("cases.new"))}</h2><form class="filters" id="case-form">
    <label>${esc(t("reports.commune"))}<select name="commune">${communes.map(([code, name]) => `<option value="${esc(code)}">${esc(name)}</option>`).join("")}</select></label>
    <label>${esc(t("cases.category"))}<select name="category">${CATEGORIES.map((c) => `<option value="${c}">${esc(t(`case.${c}`))}</option>`).join("")}</select></label>
    <label>${esc(t("cases.title"))}<input name="title" required></label>
    <label>${esc(t("cases.occurred"))}<input type="datetime-local" name="occurred" value="${local(Date.now())}" required></label>
    <label>${esc(t("exports.unit"))}<input name="requesting_unit"></label>
    <label>${esc(t("exports.officer"))}<input name="officer"></label>
    <button class="btn">${esc(t("common.save"))}</button></form><div class="err" id="case-err"></div>
    <table><thead><tr><th>${esc(t("cases.occurred"))}</th><th>${esc(t("cases.title"))}</th><th>${esc(t("cases.category"))}</th><th>${esc(t("cases.status"))}</th>
    <th>${esc(t("cases.helped"))}</th><th class="wide">${esc(t("cases.links"))}</th></tr></thead><tbody id="case-rows"></tbody></table>`;
  const refresh = async () => {
    const list = (await api("/api/cases")).cases;
    $("#case-rows").innerHTML = list.map((c) => `<tr data-case="${esc(c.id)}"><td>${esc(fmtTime(c.occurred))}</td><td>${esc(c.title)}<br><small>${esc(c.requesting_unit)}</small></td>
      <td>${esc(t(`case.${c.category}`))}</td>
      <td><select data-field="status">${["open", "clarified", "closed"].map((st) => `<option value="${st}" ${st === c.status ? "selected" : ""}>${esc(t(`cases.status.${st}`))}</option>`).join("")}</select></td>
      <td><input type="checkbox" data-field="footage_helped" ${c.footage_helped ? "checked" : ""}></td>
      <td class="wide"><button class="btn" data-link="event">${esc(t("cases.link_event"))}</button> <button class="btn" data-link="export">${esc(t("cases.link_export"))}</button></td></tr>`).join("");
  };
  $("#case-form").onsubmit = async (ev) => {
    ev.preventDefault();
    const f = new FormData(ev.target);
    try {
      await api("/api/cases", { method: "POST", body: { commune: f.get("commune"), category: f.get("category"), title: f.get("title"),
        occurred: new Date(f.get("occurred")).toISOString().replace("Z", "+00:00"), requesting_unit: f.get("requesting_unit"), officer: f.get("officer") } });
      $("#case-err").textContent = ""; ev.target.title.value = "";
      refresh();
    } catch (err) { $("#case-err").textContent = t("common.error", { message: err.message }); }
  };
  main.onchange = async (ev) => {
    const row = ev.target.closest("tr[data-case]"); const field = ev.target.dataset.field; if (!row || !field) return;
    const value = field === "footage_helped" ? ev.target.checked : ev.target.value;
    try { await api(`/api/cases/${encodeURIComponent(row.dataset.case)}`, { method: "PATCH", body: { [field]: value } }); $("#case-err").textContent = ""; }
    catch (err) { $("#case-err").textContent = t("common.error", { message: err.message }); }
  };
  main.onclick = async (ev) => {
    const kind = ev.target.dataset?.link; const row = ev.target.closest("tr[data-case]"); if (!kind || !row) return;
    const id = prompt(t(kind === "event" ? "cases.ask_event" : "cases.ask_export")); if (!id) return;
    try { await api(`/api/cases/${encodeURIComponent(row.dataset.case)}/links`, { method: "POST", body: { kind, id: id.trim() } }); $("#case-err").textContent = ""; }
    catch (err) { $("#case-err").textContent = t("common.error", { message: err.message }); }
  };
  await refresh();
}

const PAGES = { live: [pageLive, "viewer"], events: [pageEvents, "viewer"], playback: [pagePlayback, "reviewer"],
  cameras: [pageCameras, "viewer"], exports: [pageExports, "reviewer"], cases: [pageCases, "reviewer"],
  reports: [pageReports, "viewer"], admin: [pageAdmin, "admin"] };

async function route() {
  if (!me) return;
  cleanup();
  let name = location.hash.replace(/^#\//, "") || "live";
  const main = $("#page");
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("hidden", !can(a.dataset.role));
  if (name.startsWith("event/")) {
    main.dataset.page = "event"; main.innerHTML = "";
    try { await pageEvent(main, decodeURIComponent(name.slice(6))); } catch (err) { main.innerHTML = `<p class="err">${esc(t("common.error", { message: err.message }))}</p>`; }
    return;
  }
  if (!PAGES[name] || !can(PAGES[name][1])) name = "live";
  for (const a of document.querySelectorAll("#nav a")) {
    a.classList.toggle("active", a.getAttribute("href") === `#/${name}`);
  }
  main.dataset.page = name;
  main.innerHTML = "";
  try { await PAGES[name][0](main); } catch (err) { if (me) main.innerHTML = `<p class="err">${esc(t("common.error", { message: err.message }))}</p>`; }
}
window.addEventListener("hashchange", route);

async function start() {
  const r = await fetch("/api/me");
  if (!r.ok) { showLogin(); return; }
  me = await r.json();
  $("#login").classList.add("hidden");
  $("#nav").classList.remove("hidden");
  $("#logout").classList.remove("hidden");
  $("#who").textContent = me.username;
  connectPush();
  watchHealth();
  route();
}

// Node-wide faults every page must show: a storage alarm (full, read-only, failing disk) and a
// stepped system clock (recorded times stay continuous, but whoever reads them must know).
let healthTimer = null;
async function watchHealth() {
  clearTimeout(healthTimer);
  try {
    const h = await (await fetch("/healthz")).json();
    const notes = [];
    if (h.storage_alarm) notes.push(t("health.storage", { message: h.storage_alarm }));
    const c = h.clock || {};
    if (c.last_step) {
      const d = c.last_step.delta_s;
      notes.push(t(d < 0 ? "health.clock_back" : "health.clock_forward",
        { seconds: Math.abs(d).toFixed(0), time: fmtTime(c.last_step.at) }) +
        (c.ahead_of_system_clock_s > 1 ? " " + t("health.clock_ahead", { seconds: c.ahead_of_system_clock_s.toFixed(0) }) : ""));
    }
    $("#health-bar").innerHTML = notes.map((n) => `<div>${esc(n)}</div>`).join("");
    $("#health-bar").classList.toggle("hidden", notes.length === 0);
  } catch { /* the server is restarting: the next poll tells */ }
  if (me) healthTimer = setTimeout(watchHealth, 15000);
}

loadStrings().then(start);
