// Browser end-to-end test: the real server and camera simulator, Debian's Chromium driven by
// playwright-core. A police reviewer logs in, a live tile plays and its glass-to-glass latency is
// read off the simulator's burned-in frame index, a simulated person raises a toast and an event,
// its clip plays, the playback timeline is scrubbed, an export finishes, logout; a viewer of one
// commune cannot reach playback nor the other commune's camera.
//
// usage: node e2e.mjs --bin BUILD/bin --out DIR      (exit 0 = every check passed)
import { spawn, spawnSync } from "node:child_process";
import { createInterface } from "node:readline";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "../..");
const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith("--") ? [...acc, [a.slice(2), all[i + 1]]] : acc), []));
const bin = path.resolve(args.bin || path.join(repo, "build/dev/bin"));
const out = path.resolve(args.out || fs.mkdtempSync("/tmp/matthan-e2e-"));
fs.rmSync(out, { recursive: true, force: true });
fs.mkdirSync(out, { recursive: true });

const children = [];
let failures = 0;
const log = (...m) => console.log("e2e:", ...m);
function check(ok, what, detail = "") {
  console.log(`${ok ? "PASS" : "FAIL"} ${what}${detail ? ` — ${detail}` : ""}`);
  if (!ok) failures++;
  return ok;
}
function stopAll() { for (const c of children) try { c.kill("SIGTERM"); } catch (e) { /* gone */ } }
process.on("exit", stopAll);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The simulator: its base URL and cameras from its stdout.
async function startCamsim() {
  const p = spawn(path.join(bin, "matthan-camsim"), ["--scenario", path.join(repo, "tests/scenarios/browser.yaml"),
    "--frame-log", path.join(out, "frames.log")], { stdio: ["pipe", "pipe", fs.openSync(path.join(out, "camsim.log"), "w")] });
  children.push(p);
  const cams = [];
  const rl = createInterface({ input: p.stdout });
  for await (const line of rl) {
    const [kind, a, b, c, d] = line.split(/\s+/);
    if (kind === "CAMERA") cams.push({ id: a, hamlet: b, main: c, sub: d });
    if (cams.length === 3) break;
  }
  return cams;
}

// A free port, so that the server keeps its address when the admin restarts it.
function freePort() {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.listen(0, "127.0.0.1", () => { const { port } = srv.address(); srv.close(() => resolve(port)); });
  });
}

function writeConfig(cams, port) {
  const commune = { gate: "xa-a", market: "xa-b", night: "xa-b" };
  const lines = ["node_id: e2e-node", "server:", `  listen: 127.0.0.1:${port}`, `  data_dir: ${out}/data`, "defaults:", "  analysis_fps: 10",
    "recording:", "  segment_s: 10", "cameras:"];
  for (const c of cams) {
    lines.push(`  - {id: ${c.id}, name: "Camera ${c.id}", commune: ${commune[c.id]}, hamlet: ${c.hamlet}, main_url: "${c.main}", sub_url: "${c.sub}",`);
    lines.push("     masks: [[[0, 0], [0.45, 0], [0.45, 0.07], [0, 0.07]]]}");
  }
  fs.writeFileSync(path.join(out, "matthan.yaml"), lines.join("\n") + "\n");
  return path.join(out, "matthan.yaml");
}

function addUser(config, name, role, password, communes) {
  const r = spawnSync(path.join(bin, "matthan"), ["user", "add", name, "--role", role, "--config", config, ...(communes ? ["--communes", communes] : [])],
    { input: password + "\n", encoding: "utf8" });
  if (r.status !== 0) throw new Error(`user add ${name}: ${r.stderr}`);
}

// The server's own system clock, through Debian's libfaketime (never the machine's clock): the
// last step sets it back an hour and the page must say so.
const FAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";
const clockFile = path.join(out, "faketime.rc");
async function startServer(config) {
  const env = { ...process.env };
  if (fs.existsSync(FAKETIME)) {
    fs.writeFileSync(clockFile, "+0\n");
    Object.assign(env, { LD_PRELOAD: FAKETIME, FAKETIME_TIMESTAMP_FILE: clockFile, FAKETIME_CACHE_DURATION: "1", FAKETIME_DONT_FAKE_MONOTONIC: "1" });
  }
  const p = spawn(path.join(bin, "matthan"), ["run", "--config", config], { env, stdio: ["ignore", "pipe", fs.openSync(path.join(out, "server.err"), "w")] });
  children.push(p);
  const rl = createInterface({ input: p.stdout });
  for await (const line of rl) {
    const m = line.match(/^LISTENING (http:\/\/\S+)/);
    if (m) return m[1].replace(/\/$/, "");
  }
  throw new Error("the server did not start: see " + out);
}

// index -> send time (µs) of the sub stream's frames, from the simulator's frame log.
function frameTimes(camera) {
  const map = new Map();
  for (const line of fs.readFileSync(path.join(out, "frames.log"), "utf8").split("\n")) {
    const [cam, stream, , index, sendUs] = line.split(/\s+/);
    if (cam === camera && stream === "sub") map.set(Number(index), Number(sendUs));
  }
  return map;
}

async function login(page, base, user, password) {
  await page.goto(base + "/");
  await page.fill("#user", user);
  await page.fill("#pass", password);
  await page.click("#login-go");
  await page.waitForSelector("#nav:not(.hidden)");
}

const PASSWORD = "Kiem-tra-2026!";
let currentPage = null;  // for a screenshot when a step fails
async function main() {
  log("output in", out);
  const cams = await startCamsim();
  const config = writeConfig(cams, await freePort());
  // Accounts before the server starts: no default password anywhere.
  addUser(config, "police", "reviewer", PASSWORD);
  addUser(config, "guard", "viewer", PASSWORD, "xa-a");
  addUser(config, "chief", "admin", PASSWORD);
  const base = await startServer(config);
  log("server at", base);

  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--autoplay-policy=no-user-gesture-required"] });
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: "vi-VN" });
    const page = await context.newPage();
    currentPage = page;
    page.on("pageerror", (e) => check(false, "no script error in the page", e.message));

    // 1. Log in (Vietnamese by default).
    await login(page, base, "police", PASSWORD);
    check((await page.textContent('#nav a[href="#/live"]')) === "Trực tiếp", "the page speaks Vietnamese by default");

    // 2. A live tile plays: its video time advances.
    const tile = page.locator('.tile[data-camera="gate"] video');
    await tile.waitFor();
    await page.waitForFunction(() => document.querySelector('.tile[data-camera="gate"] video').currentTime > 0, null, { timeout: 20000 });
    const t0 = await tile.evaluate((v) => v.currentTime);
    await sleep(3000);
    const t1 = await tile.evaluate((v) => v.currentTime);
    check(t1 - t0 > 2, "a live tile plays (its video time advances)", `${(t1 - t0).toFixed(2)} s of video in 3 s`);
    // The H.265 camera: no H.265 in this Chromium's MSE, so the tile shows JPEG pictures.
    await page.waitForFunction(() => { const i = document.querySelector('.tile[data-camera="night"] img.live'); return i && i.naturalWidth > 0; }, null, { timeout: 20000 });
    const src0 = await page.getAttribute('.tile[data-camera="night"] img.live', "src");
    await sleep(1500);
    const src1 = await page.getAttribute('.tile[data-camera="night"] img.live', "src");
    check(src0 !== src1, "an H.265 tile falls back to MJPEG pictures that keep coming", await page.textContent('.tile[data-camera="night"] .msg'));
    await page.screenshot({ path: path.join(out, "live.png") });

    // 3. Glass to glass: the frame index burned into the picture vs the simulator's send time.
    const samples = await tile.evaluate((video) => new Promise((resolve) => {
      const canvas = document.createElement("canvas");
      const ctx = canvas.getContext("2d", { willReadFrequently: true });
      const found = [];
      const read = () => {   // camsim's frame code: 2 sync + 20 index + 4 check blocks
        const w = video.videoWidth, h = video.videoHeight;
        canvas.width = w; canvas.height = h;
        ctx.drawImage(video, 0, 0, w, h);
        const b = Math.max(4, Math.floor(h / 45));
        const img = ctx.getImageData(0, 0, 28 * b, 2 * b).data;
        const mean = (i) => {
          let s = 0, n = 0;
          const cx = b + i * b + Math.floor(b / 4), cy = b + Math.floor(b / 4);
          for (let y = cy; y < cy + Math.floor(b / 2); y++) for (let x = cx; x < cx + Math.floor(b / 2); x++) { const o = (y * 28 * b + x) * 4; s += (img[o] + img[o + 1] + img[o + 2]) / 3; n++; }
          return s / n;
        };
        const m = Array.from({ length: 26 }, (_, i) => mean(i));
        if (m[0] - m[1] < 80) return null;
        const th = (m[0] + m[1]) / 2;
        let index = 0, check = 0;
        for (let i = 2; i < 22; i++) index = index * 2 + (m[i] > th ? 1 : 0);
        for (let i = 22; i < 26; i++) check = check * 2 + (m[i] > th ? 1 : 0);
        let sum = 0; for (let i = 0; i < 5; i++) sum += (index >> (4 * i)) & 15;
        return check === (~sum & 15) ? index : null;
      };
      const onFrame = (now, meta) => {
        const index = read();
        if (index !== null) found.push({ index, shown_ms: performance.timeOrigin + meta.expectedDisplayTime });
        if (found.length >= 40) resolve(found); else video.requestVideoFrameCallback(onFrame);
      };
      video.requestVideoFrameCallback(onFrame);
      setTimeout(() => resolve(found), 15000);
    }));
    await sleep(500);
    const sent = frameTimes("gate");
    const lat = samples.filter((s) => sent.has(s.index)).map((s) => s.shown_ms - sent.get(s.index) / 1000).sort((a, b) => a - b);
    const median = lat.length ? lat[Math.floor(lat.length / 2)] : NaN;
    const worst = lat.length ? lat[lat.length - 1] : NaN;
    check(lat.length >= 20, "frame indices read off the live video", `${lat.length} of ${samples.length} frames matched the simulator's log`);
    check(median <= 1000, "glass-to-glass latency ≤ 1 s", `median ${median.toFixed(0)} ms, worst ${worst.toFixed(0)} ms over ${lat.length} frames`);
    fs.writeFileSync(path.join(out, "latency.json"), JSON.stringify({ median_ms: median, worst_ms: worst, frames: lat.length }));
    check(/\d/.test(await page.textContent("#data-used")), "the page shows the data it has used", await page.textContent("#data-used"));

    // 4. A simulated person → a toast, and the event in the list.
    const toast = page.locator(".toast").first();
    await toast.waitFor({ timeout: 60000 });
    check(true, "a new event raises a toast", await toast.textContent());
    const eventId = await toast.getAttribute("data-event");
    await page.goto(base + "/#/events");
    const card = page.locator(`.event[data-id="${eventId}"]`);
    await card.waitFor({ timeout: 10000 });
    check(true, "the toast's event is in the event list", (await card.textContent()).replace(/\s+/g, " ").trim());
    await page.screenshot({ path: path.join(out, "events.png") });

    // 4b. The link an alert message carries opens the event's own page; "Tôi đã nhận" answers it.
    await page.goto(base + "/#/event/" + encodeURIComponent(eventId));
    const ackButton = page.locator(`#ev-list .event[data-id="${eventId}"] button[data-act="ack"]`);
    await ackButton.waitFor({ timeout: 10000 });
    await ackButton.click();
    await page.waitForFunction((id) => !document.querySelector(`#ev-list .event[data-id="${id}"] button[data-act="ack"]`), eventId, { timeout: 10000 });
    const acked = await page.evaluate(async (id) => (await (await fetch(`/api/events/${encodeURIComponent(id)}`)).json()).ack, eventId);
    check(acked?.by === "police", "the alert link's page acknowledges the event", JSON.stringify(acked));
    await page.goto(base + "/#/events");
    await card.waitFor({ timeout: 10000 });

    // 5. Review it, then play its clip.
    page.once("dialog", (d) => d.accept("Người đi bộ qua cổng"));
    await card.locator('button[data-act="confirmed"]').click();
    await page.waitForSelector(`.event[data-id="${eventId}"] .badge.confirmed`);
    const reviewed = await page.evaluate(async (id) => (await (await fetch(`/api/events/${id}`)).json()).review, eventId);
    check(reviewed.state === "confirmed" && reviewed.by === "police" && reviewed.note === "Người đi bộ qua cổng", "a review is stored with who and the note", JSON.stringify(reviewed));
    await page.locator(`.event[data-id="${eventId}"] button[data-act="play"]`).click();
    await page.waitForFunction(() => { const v = document.querySelector("#modal video"); return v && v.currentTime > 1; }, null, { timeout: 30000 });
    check(true, "the event's clip plays");
    await page.click("#modal-close");

    // 6. Playback: scrub the timeline to 20 s ago and play.
    await page.goto(base + "/#/playback");
    await page.selectOption('#pb-form select[name="camera"]', "gate");
    await page.waitForSelector("#pb-line .seg");
    // Scrub: press left of the newest recorded range and drag into it.
    await sleep(3000);
    const seg = await page.locator("#pb-line .seg").last().boundingBox();
    const x = seg.x + seg.width / 2, y = seg.y + seg.height / 2;
    await page.mouse.move(x - 40, y);
    await page.mouse.down();
    await page.mouse.move(x, y, { steps: 5 });
    await page.mouse.up();
    await page.waitForFunction(() => document.querySelector("#pb-video").currentTime > 1, null, { timeout: 30000 });
    check(true, "scrubbing the timeline plays the recording", await page.textContent("#pb-at"));
    await page.screenshot({ path: path.join(out, "playback.png") });

    // 7. Export the last minute of the gate camera.
    await page.goto(base + "/#/exports");
    await page.selectOption('#ex-form select[name="camera"]', ["gate"]);
    await page.fill('#ex-form input[name="reason"]', "Kiểm tra trích xuất");
    await page.fill('#ex-form input[name="requesting_unit"]', "Công an xã");
    await page.click("#ex-go");
    await page.waitForSelector('#ex-rows tr[data-state="done"] a', { timeout: 60000 });
    const files = await page.locator('#ex-rows tr[data-state="done"] a').allTextContents();
    check(files.includes("gate.mp4") && files.includes("manifest.json"), "an export finishes with its files listed", files.join(", "));
    await page.screenshot({ path: path.join(out, "exports.png") });

    // 7b. A case served by that export: opened, linked, clarified with the footage's help.
    const exportId = await page.getAttribute('#ex-rows tr[data-state="done"]', "data-export");
    await page.goto(base + "/#/cases");
    await page.fill('#case-form input[name="title"]', "Mất trộm xe đạp ở cổng làng");
    await page.selectOption('#case-form select[name="category"]', "theft");
    await page.click('#case-form button');
    const caseRow = page.locator("#case-rows tr[data-case]").first();
    await caseRow.waitFor();
    page.once("dialog", (d) => d.accept(exportId));
    await caseRow.locator('button[data-link="export"]').click();
    await caseRow.locator('select[data-field="status"]').selectOption("clarified");
    await caseRow.locator('input[data-field="footage_helped"]').check();
    await page.waitForFunction(async (id) => {
      const c = await (await fetch(`/api/cases/${id}`)).json();
      return c.status === "clarified" && c.footage_helped && c.exports.length === 1;
    }, await caseRow.getAttribute("data-case"), { timeout: 10000 });
    check(true, "a case is opened, linked to the export and marked clarified with the footage's help");

    // 7c. Today's operation report: the export and the case are counted; the PDF downloads.
    await page.goto(base + "/#/reports");
    // Today in the server's zone (Asia/Ho_Chi_Minh), not the browser's (UTC here).
    const today = await page.evaluate(() => new Intl.DateTimeFormat("en-CA", { timeZone: "Asia/Ho_Chi_Minh" }).format(new Date()));
    await page.fill('#rp-form input[name="from"]', today);
    await page.fill('#rp-form input[name="to"]', today);
    await page.click("#rp-go");
    await page.waitForSelector("#rp-body .cards", { timeout: 30000 });
    const cards = await page.locator("#rp-body .card").allTextContents();
    const figure = (label) => cards.find((c) => c.startsWith(label)) || "";
    check(/Trích xuất1/.test(figure("Trích xuất")) || /Trích xuất[1-9]/.test(figure("Trích xuất")), "the report counts today's extraction", figure("Trích xuất"));
    check(/Vụ việc1 \(1 nhờ camera\)/.test(figure("Vụ việc")), "the report counts the case the footage helped", figure("Vụ việc"));
    check(/\d+,\d\d %|\d+\.\d\d %/.test(figure("Tỷ lệ hoạt động")), "the report shows today's uptime", figure("Tỷ lệ hoạt động"));
    check(await page.locator("#rp-body svg.bars rect").count() === 2, "the report draws uptime and weekly charts (one camera, one week)");
    check(/1\/1/.test(figure("Camera")), "the camera online now is online at the end of today's report", figure("Camera"));
    const pdfHead = await page.evaluate(async (href) => { const r = await fetch(href); return r.status + " " + (await r.text()).slice(0, 5); },
      await page.getAttribute('#rp-body a[href*="format=pdf"]', "href"));
    check(pdfHead === "200 %PDF-", "the report's PDF downloads", pdfHead);
    await page.screenshot({ path: path.join(out, "reports.png"), fullPage: true });

    // 8. English on a switch.
    await page.click("#lang");
    await page.waitForFunction(() => document.querySelector('#nav a[href="#/live"]').textContent === "Live");
    check(true, "the language switch turns the page to English");
    await page.click("#lang");

    // 9. Log out: the session is gone.
    await page.click("#logout");
    await page.waitForSelector("#login:not(.hidden)");
    const after = await page.evaluate(async () => (await fetch("/api/me")).status);
    check(after === 401, "after logout the session is gone", `GET /api/me → ${after}`);

    // 9b. The admin records a camera's make and install date in the inventory.
    await login(page, base, "chief", PASSWORD);
    await page.goto(base + "/#/admin");
    const gateRow = page.locator('#org-form tr[data-camera="gate"]');
    await gateRow.waitFor();
    await gateRow.locator('input[name="model"]').fill("DS-2CD1023G0E-I");
    await gateRow.locator('select[name="owner"]').selectOption("household");
    await gateRow.locator('input[name="installed"]').fill("2025-03-01");
    await page.click("#org-save");
    await page.waitForFunction(() => document.querySelector("#org-msg").textContent === "Đã lưu.", null, { timeout: 10000 });
    const inventory = await page.evaluate(async () => (await (await fetch("/api/organisation")).json()).cameras.find((c) => c.id === "gate"));
    check(inventory.model === "DS-2CD1023G0E-I" && inventory.owner === "household" && inventory.installed === "2025-03-01",
      "the admin edits a camera's inventory in the page", JSON.stringify(inventory));
    await gateRow.locator('input[name="installed"]').fill("");
    await page.click("#org-save");
    await page.waitForFunction(() => document.querySelector("#org-msg").textContent === "Đã lưu.", null, { timeout: 10000 });
    await page.screenshot({ path: path.join(out, "admin.png"), fullPage: true });

    // 9c. The admin adds an account and changes its role in the page; adds a camera (the market
    // camera's streams under a new id), restarts the server from the page to apply it, and the
    // new camera comes online.
    await page.fill('#user-form input[name="username"]', "tuan-tra");
    await page.fill('#user-form input[name="password"]', PASSWORD);
    await page.click("#user-form button");
    const patrolRow = page.locator('#user-table tr[data-user="tuan-tra"]');
    await patrolRow.waitFor();
    await patrolRow.locator('select[name="role"]').selectOption("reviewer");
    await patrolRow.locator('input[name="communes"]').fill("xa-b");
    await patrolRow.locator('button[data-act="save-user"]').click();
    await page.waitForFunction(() => document.querySelector("#user-msg").textContent.startsWith("tuan-tra"), null, { timeout: 10000 });
    const patrol = await page.evaluate(async () => (await (await fetch("/api/users")).json()).users.find((u) => u.username === "tuan-tra"));
    check(patrol?.role === "reviewer" && patrol.communes.join() === "xa-b" && patrol.disabled === false,
      "the admin changes an account's role and communes in the page", JSON.stringify(patrol));
    await page.click("#cam-add");
    const form = page.locator("#cam-form");
    await form.locator('input[name="id"]').fill("cho-moi");
    await form.locator('input[name="name"]').fill("Chợ mới");
    await form.locator('input[name="commune"]').fill("xa-b");
    await form.locator('input[name="hamlet"]').fill(cams[1].hamlet);
    await form.locator('input[name="main_url"]').fill(cams[1].main);
    await form.locator('input[name="sub_url"]').fill(cams[1].sub);
    await form.locator('input[name="password"]').fill("Mat-khau-camera-1");
    await page.screenshot({ path: path.join(out, "camera-form.png") });
    await page.click("#cam-save");
    await page.locator('#cam-admin tr[data-cam="cho-moi"]').waitFor();
    check(await page.locator("#cam-restart-bar").isVisible(), "a camera added in the page asks for a restart");
    const listed = await page.evaluate(async () => (await fetch("/api/admin/cameras")).text());
    check(!listed.includes("Mat-khau-camera-1"), "the camera's password is never shown back");
    page.once("dialog", (d) => d.accept());
    await page.click("#cam-restart");
    await page.waitForFunction(() => { const bar = document.querySelector("#cam-restart-bar"); return bar && bar.classList.contains("hidden"); }, null, { timeout: 60000 });
    let added = null;
    for (let i = 0; i < 60 && added?.state !== "online"; ++i) {
      await sleep(500);
      added = await page.evaluate(async () => (await (await fetch("/api/cameras")).json()).cameras.find((c) => c.id === "cho-moi"));
    }
    check(added?.state === "online", "after the restart from the page the added camera is online", JSON.stringify(added?.state));
    await page.screenshot({ path: path.join(out, "admin-cameras.png"), fullPage: true });
    await page.click("#logout");
    await page.waitForSelector("#login:not(.hidden)");

    // 10. A viewer of commune xa-a, on a phone: no playback, not the other commune's camera.
    await page.setViewportSize({ width: 390, height: 844 });
    await login(page, base, "guard", PASSWORD);
    await page.waitForFunction(() => { const v = document.querySelector('.tile[data-camera="gate"] video'); return v && v.currentTime > 0; }, null, { timeout: 20000 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    check(overflow <= 0, "the live page fits a phone's width (390 px)", `${overflow} px too wide`);
    await page.screenshot({ path: path.join(out, "phone.png") });
    check(await page.locator('#nav a[href="#/playback"]').isHidden(), "a viewer has no playback link");
    await page.goto(base + "/#/playback");
    await page.waitForFunction(() => document.querySelector("#page").dataset.page === "live");
    check(true, "a viewer sent to playback lands on live");
    const status = await page.evaluate(async () => ({
      rec: (await fetch(`/api/cameras/gate/recordings?from=now-60s&to=now`)).status,
      other: (await fetch(`/api/cameras/market`)).status,
      list: (await (await fetch("/api/cameras")).json()).cameras.map((c) => c.id),
    }));
    check(status.rec === 403, "a viewer cannot read recordings", `→ ${status.rec}`);
    check(status.other === 403, "a viewer of xa-a cannot see xa-b's camera", `→ ${status.other}`);
    check(status.list.join() === "gate", "a viewer's camera list is its commune's", status.list.join());
    await page.screenshot({ path: path.join(out, "viewer.png") });

    // 11. The server's system clock is set back an hour: every page says so (in Vietnamese).
    if (fs.existsSync(FAKETIME)) {
      fs.writeFileSync(clockFile, "-3600\n");
      await sleep(2500);
      await page.reload();
      await page.waitForSelector("#health-bar:not(.hidden)", { timeout: 10000 });
      const bar = await page.textContent("#health-bar");
      check(/lùi 3[56]\d\d giây/.test(bar) && bar.includes("đi trước đồng hồ hệ thống"), "a stepped clock is flagged on the page", bar);
      await page.screenshot({ path: path.join(out, "clock-step.png") });
    }
  } catch (e) {
    if (currentPage) {
      await currentPage.screenshot({ path: path.join(out, "failed.png") }).catch(() => {});
      fs.writeFileSync(path.join(out, "failed.html"), await currentPage.content().catch(() => ""));
    }
    throw e;
  } finally {
    await browser.close();
  }
}

main().then(() => {
  stopAll();
  console.log(failures ? `e2e: ${failures} check(s) failed (output in ${out})` : "e2e: all checks passed");
  process.exit(failures ? 1 : 0);
}).catch((e) => {
  console.log("FAIL", e.message);
  stopAll();
  process.exit(1);
});
