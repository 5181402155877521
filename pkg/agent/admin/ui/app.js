// The admin page: live charts from /live, the tap from /tap, the profiler
// from /stats, the config from /config. Everything that came from a
// request (paths, headers) is put in the page as text, never as HTML.
"use strict";

const KEEP = 300; // points a chart keeps: five minutes
const TAP_ROWS = 200;
// The response flags, as exchange.FlagNames lists them (admin_test checks).
const FLAGS = ["UF", "UT", "RL", "FI", "DI", "UO", "UC", "DENY", "URX", "DC", "DPE"];
const CLASSES = ["1xx", "2xx", "3xx", "4xx", "5xx"];
const COLORS = ["#2f6fdb", "#1b998b", "#e07a1f", "#c2185b", "#6a4fbf", "#8d6e63", "#00838f", "#9e9d24", "#5d4037", "#d81b60", "#455a64"];

const $ = (id) => document.getElementById(id);
const el = (tag, text, cls) => {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
};
const num = (v, digits = 0) => (v === undefined || v === null ? "–" : Number(v).toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits }));
const bytes = (v) => {
  if (v === null || v === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return v.toFixed(i ? 1 : 0) + " " + units[i];
};

// A chart of some named series against time; series can be added as they
// first appear (the response flags).
class Chart {
  constructor(id, title, names, unit) {
    this.box = $(id);
    this.data = [[]];
    this.names = [];
    this.unit = unit;
    this.plot = new uPlot({
      title, width: this.width(), height: 200,
      scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(max, 1) * 1.1] } },
      axes: [{}, { values: (u, vals) => vals.map((v) => (unit === "B/s" ? bytes(v) : num(v, v < 10 ? 1 : 0))), size: 60 }],
      series: [{}],
    }, this.data, this.box);
    names.forEach((n) => this.add(n));
  }
  width() { return Math.max(this.box.clientWidth - 10, 300); }
  add(name) {
    const i = this.names.length;
    this.names.push(name);
    this.data.push(this.data[0].map(() => null));
    this.plot.addSeries({ label: name, stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: false,
      value: (u, v) => (v === null ? "–" : (this.unit === "B/s" ? bytes(v) + "/s" : num(v, 2) + " " + this.unit)) });
  }
  // push adds a point: values by series name, null for a gap.
  push(t, values) {
    for (const n of Object.keys(values)) if (!this.names.includes(n)) this.add(n);
    this.data[0].push(t);
    this.names.forEach((n, i) => this.data[i + 1].push(values[n] ?? null));
    if (this.data[0].length > KEEP) this.data.forEach((s) => s.shift());
    this.plot.setData(this.data);
  }
  resize() { this.plot.setSize({ width: this.width(), height: 200 }); }
}

const charts = {
  rps: new Chart("chart-rps", "Requests per second", ["requests"], "req/s"),
  latency: new Chart("chart-latency", "Latency (ms, over each second)", ["p50", "p90", "p99"], "ms"),
  classes: new Chart("chart-classes", "Responses by status class (per second)", CLASSES, "/s"),
  flags: new Chart("chart-flags", "Responses by response flag (per second)", [], "/s"),
  active: new Chart("chart-active", "Open connections", ["connections"], ""),
  bytes: new Chart("chart-bytes", "HTTP body bytes per second", ["from clients", "to clients"], "B/s"),
};
window.addEventListener("resize", () => Object.values(charts).forEach((c) => c.resize()));
// For whoever drives the page (the browser test): what has been received.
window.veneer = { charts, points: 0, tapped: 0 };

function onPoint(p) {
  window.veneer.points++;
  $("requests-total").textContent = num(p.requests_total);
  $("active").textContent = num(p.active_connections);
  if (p.rps === undefined) return; // the first point: totals only
  $("rps").textContent = num(p.rps, 1);
  $("p99").textContent = p.p99_ms === undefined ? "–" : num(p.p99_ms, 2);
  const t = p.t / 1000;
  charts.rps.push(t, { requests: p.rps });
  charts.latency.push(t, { p50: p.p50_ms ?? null, p90: p.p90_ms ?? null, p99: p.p99_ms ?? null });
  const classes = {};
  CLASSES.forEach((c) => (classes[c] = (p.classes || {})[c] ?? 0));
  charts.classes.push(t, classes);
  const flags = {};
  charts.flags.names.forEach((f) => (flags[f] = 0));
  for (const [f, v] of Object.entries(p.flags || {})) flags[f] = v;
  charts.flags.push(t, flags);
  charts.active.push(t, { connections: p.active_connections });
  charts.bytes.push(t, { "from clients": p.in_bytes_per_s, "to clients": p.out_bytes_per_s });
}

const live = new EventSource("live");
live.addEventListener("metrics", (e) => onPoint(JSON.parse(e.data)));
live.onopen = () => { $("conn").textContent = "live"; $("conn").classList.remove("bad"); };
live.onerror = () => { $("conn").textContent = "disconnected: retrying"; $("conn").classList.add("bad"); };

// The tap.
FLAGS.forEach((f) => $("flag-choice").append(new Option(f, f)));
let tap = null;
function openTap() {
  if (tap) tap.close();
  const q = new URLSearchParams();
  for (const [k, v] of new FormData($("tap-filter"))) if (v) q.set(k, v);
  tap = new EventSource("tap?" + q);
  tap.addEventListener("request", (e) => addTapRow(JSON.parse(e.data)));
  tap.addEventListener("status", (e) => {
    const s = JSON.parse(e.data);
    $("tap-state").textContent = s.skipped ? s.skipped + " skipped in the last second (over the bound or behind)" : "";
  });
  tap.onerror = () => {
    $("tap-state").textContent = "tap disconnected: retrying";
    // A filter the agent refused gets a 400 and EventSource stops: say so.
    if (tap.readyState === EventSource.CLOSED) {
      fetch("tap?" + q).then((r) => r.text()).then((t) => ($("tap-state").textContent = t.trim()));
    }
  };
}
let filterTimer;
$("tap-filter").addEventListener("input", () => { clearTimeout(filterTimer); filterTimer = setTimeout(openTap, 400); });
$("tap-filter").addEventListener("submit", (e) => { e.preventDefault(); openTap(); });
openTap();

function addTapRow(ev) {
  window.veneer.tapped++;
  const body = $("tap").tBodies[0];
  const tr = el("tr", undefined, "row s" + Math.floor(ev.status / 100));
  const time = new Date(ev.time).toLocaleTimeString("en-GB", { hour12: false }) + "." + String(new Date(ev.time).getMilliseconds()).padStart(3, "0");
  [[time], [ev.direction], [ev.method], [ev.authority], [ev.path, "path"], [String(ev.status), "status"], [ev.flags],
    [num(ev.duration_ms, 2)], [ev.request_id || ""], [ev.peer]].forEach(([text, cls]) => tr.append(el("td", text, cls)));
  tr.addEventListener("click", () => {
    if (tr.nextSibling && tr.nextSibling.classList.contains("headers")) { tr.nextSibling.remove(); return; }
    const row = el("tr", undefined, "headers");
    const td = el("td");
    td.colSpan = 10;
    const lines = (title, hs) => title + "\n" + (hs || []).map(([n, v]) => "  " + n + ": " + v).join("\n");
    td.textContent = lines("request headers", ev.request_headers) + "\n" + lines("response headers", ev.response_headers);
    row.append(td);
    tr.after(row);
  });
  body.prepend(tr);
  while (body.querySelectorAll("tr.row").length > TAP_ROWS) {
    const last = body.lastElementChild;
    last.remove();
  }
}

// The per-path profiler, sortable.
let paths = [];
let sortKey = "count", sortDir = -1;
function renderPaths() {
  const key = sortKey;
  const val = (p) => (key === "statuses" ? Object.keys(p.statuses).sort().join(",") : p[key]);
  const rows = [...paths].sort((a, b) => (val(a) < val(b) ? -1 : val(a) > val(b) ? 1 : 0) * sortDir);
  const body = $("paths").tBodies[0];
  body.replaceChildren(...rows.map((p) => {
    const tr = el("tr");
    const statuses = Object.entries(p.statuses).sort().map(([s, n]) => s + ": " + n).join("  ");
    [[p.path, "path"], [num(p.count)], [statuses], [num(p.p50_ms, 2)], [num(p.p90_ms, 2)], [num(p.p99_ms, 2)],
      [bytes(p.bytes)], [p.static_asset ? "yes" : ""]].forEach(([t, c]) => tr.append(el("td", t, c)));
    return tr;
  }));
  for (const th of $("paths").tHead.rows[0].cells) {
    th.classList.toggle("asc", th.dataset.key === sortKey && sortDir > 0);
    th.classList.toggle("desc", th.dataset.key === sortKey && sortDir < 0);
  }
}
for (const th of $("paths").tHead.rows[0].cells) {
  th.addEventListener("click", () => {
    sortDir = th.dataset.key === sortKey ? -sortDir : (th.dataset.key === "path" ? 1 : -1);
    sortKey = th.dataset.key;
    renderPaths();
  });
}
async function loadPaths() {
  try {
    paths = (await (await fetch("stats")).json()).paths || [];
    renderPaths();
  } catch (e) { /* the agent restarting: the next round tries again */ }
}
loadPaths();
setInterval(loadPaths, 2000);

// The config (every 5 s: a reload shows) and the version.
const loadConfig = () => fetch("config").then((r) => r.json()).then((c) => ($("config").textContent = JSON.stringify(c, null, 2))).catch(() => {});
loadConfig();
setInterval(loadConfig, 5000);
fetch("version").then((r) => r.json()).then((v) => {
  $("version").textContent = v.version + (v.revision ? " " + v.revision.slice(0, 12) + (v.modified ? "+dirty" : "") : "") + " (" + v.go + ")";
}).catch(() => {});
