// monitor's live page. Data from the server is only ever put into the page as text
// (textContent, never innerHTML), so a key like <img src=x onerror=...> shows as written.
"use strict";

(function () {
  const params = new URLSearchParams(window.location.search);
  const token = params.get("token");
  const withToken = (path) => (token ? path + (path.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token) : path);
  const $ = (id) => document.getElementById(id);

  const TILE_W = 200, TILE_H = 40;  // a sparkline's drawing size (CSS scales it to the tile)
  const RING = 240;          // points kept per tile (the server's ring holds as many)
  const SINGLE_RING = 3000;  // points of an unkeyed stream's one chart
  const keys = new Map();    // key -> {row, series: {time, value, flag}, tile, dirty}
  let threshold = 91;
  let keyed = null;
  let alertsSeen = 0;
  let order = "";
  let orderDirty = false;
  const stats = window.monitorStats = { events: 0, handlerMs: 0, maxMs: 0 };  // time spent on /events
  let visible = new Set();
  let frame = 0;
  let detailKey = undefined;

  const observer = "IntersectionObserver" in window ? new IntersectionObserver((entries) => {
    for (const e of entries) {
      const k = e.target.dataset.k;
      if (e.isIntersecting) {
        visible.add(k);
        const en = keys.get(k);
        if (en && en.stale) { en.stale = false; updateTile(k, en); }
        markDirty(k);
      } else { visible.delete(k); }
    }
  }) : null;

  function fmt(v, digits) {
    return v === null || v === undefined || Number.isNaN(v) ? "-" : Number(v).toFixed(digits);
  }
  function fmtInt(v) { return v === null || v === undefined ? "-" : Number(v).toLocaleString("en"); }
  function fmtTime(t) {
    if (t === null || t === undefined) return "-";
    if (t > 1e9) return new Date(t * 1000).toISOString().replace("T", " ").slice(0, 19);
    const s = Math.floor(t), h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    return (h ? h + ":" + String(m).padStart(2, "0") : String(m)) + ":" + String(r).padStart(2, "0");
  }
  function fmtSpan(seconds) {
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m " + (s % 60) + "s";
    return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m";
  }
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // ---------------------------------------------------------------- drawing
  function draw(canvas, series, opts) {
    // Big charts follow their box; a tile's canvas keeps its own size (reading a box's size after
    // the tiles' text changed would lay out all of them again, 1,000 tiles at every tick).
    const dpr = window.devicePixelRatio || 1;
    const w = opts.axes ? (canvas.clientWidth || canvas.width) : TILE_W, h = opts.axes ? (canvas.clientHeight || canvas.height) : TILE_H;
    if (canvas.width !== Math.round(w * dpr)) { canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr); }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    const n = series.time.length;
    const axes = !!opts.axes;
    const left = axes ? 44 : 1, right = 4, top = 4, bottom = axes ? 20 : 2;
    let lo = threshold, hi = threshold;
    for (let i = 0; i < n; i++) { const v = series.value[i]; if (v < lo) lo = v; if (v > hi) hi = v; }
    lo -= 3; hi += 3;
    const t0 = n ? series.time[0] : 0, t1 = n ? series.time[n - 1] : 1;
    const X = (t) => left + (t1 > t0 ? (t - t0) / (t1 - t0) : 1) * (w - left - right);
    const Y = (v) => top + (1 - (v - lo) / (hi - lo)) * (h - top - bottom);
    if (axes) {
      ctx.fillStyle = "#6b7480"; ctx.font = "11px system-ui, sans-serif"; ctx.strokeStyle = "#eef0f3"; ctx.lineWidth = 1;
      const step = niceStep((hi - lo) / 5);
      for (let v = Math.ceil(lo / step) * step; v <= hi; v += step) {
        ctx.beginPath(); ctx.moveTo(left, Y(v)); ctx.lineTo(w - right, Y(v)); ctx.stroke();
        ctx.fillText(String(Math.round(v)), 4, Y(v) + 4);
      }
      if (n) {
        ctx.fillText(fmtTime(t0), left, h - 5);
        const last = fmtTime(t1);
        ctx.fillText(last, w - right - ctx.measureText(last).width, h - 5);
      }
    }
    ctx.strokeStyle = "#d0342c"; ctx.setLineDash([4, 3]); ctx.lineWidth = 1;
    ctx.beginPath(); ctx.moveTo(left, Y(threshold)); ctx.lineTo(w - right, Y(threshold)); ctx.stroke();
    ctx.setLineDash([]);
    if (!n) return;
    ctx.strokeStyle = "#2d6cdf"; ctx.lineWidth = axes ? 1.5 : 1.2;
    ctx.beginPath();
    for (let i = 0; i < n; i++) { const x = X(series.time[i]), y = Y(series.value[i]); if (i) ctx.lineTo(x, y); else ctx.moveTo(x, y); }
    ctx.stroke();
    ctx.fillStyle = "#d0342c";
    const r = axes ? 2.5 : 1.6;
    for (let i = 0; i < n; i++) {
      if (series.flag[i]) { ctx.beginPath(); ctx.arc(X(series.time[i]), Y(series.value[i]), r, 0, 2 * Math.PI); ctx.fill(); }
    }
  }
  function niceStep(raw) {
    const p = Math.pow(10, Math.floor(Math.log10(raw || 1))), f = raw / p;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
  }

  // ---------------------------------------------------------------- tiles
  function entry(k) {
    let e = keys.get(k);
    if (!e) { e = { row: null, series: { time: [], value: [], flag: [] }, tile: null, dirty: true }; keys.set(k, e); }
    return e;
  }
  function makeTile(k) {
    const tile = el("div", "tile");
    tile.tabIndex = 0;
    tile.dataset.k = k;
    tile.setAttribute("role", "button");
    const top = el("div", "top");
    const name = el("span", "key", k);
    name.title = k;
    top.append(name, el("span", "bpm", "-"));
    const sub = el("div", "sub");
    sub.append(el("span", "p", "p -"), el("span", "badge", ""));
    const canvas = el("canvas");
    canvas.width = TILE_W; canvas.height = TILE_H;
    tile.append(top, sub, canvas);
    tile.addEventListener("click", () => openDetail(k));
    tile.addEventListener("keydown", (ev) => { if (ev.key === "Enter") openDetail(k); });
    if (observer) observer.observe(tile);
    return tile;
  }
  function updateTile(k, e) {
    if (!e.tile) e.tile = makeTile(k);
    const r = e.row, t = e.tile;
    const bpm = t.querySelector(".bpm");
    bpm.textContent = fmt(r.value, 0);
    bpm.classList.toggle("flag", !!r.flag);
    t.querySelector(".p").textContent = "p " + fmt(r.p_abnormal, 2);
    t.querySelector(".badge").textContent = r.alert ? "ALERT " + (r.opened_at !== null ? fmtSpan(r.time - r.opened_at) : "") : "";
    t.classList.toggle("alert", !!r.alert);
    e.alertShown = !!r.alert;
  }
  function markDirty(k) {
    const e = keys.get(k);
    if (e) e.dirty = true;
    schedule();
  }
  function schedule() { if (!frame) frame = window.requestAnimationFrame(render); }
  function render() {
    frame = 0;
    if (keyed === false) {
      const e = keys.get("");
      if (e && e.dirty) { draw($("single-chart"), e.series, { axes: true }); e.dirty = false; }
      return;
    }
    for (const k of (observer ? visible : keys.keys())) {
      const e = keys.get(k);
      if (e && e.dirty && e.tile) { draw(e.tile.querySelector("canvas"), e.series, {}); e.dirty = false; }
    }
  }
  function sortKey(r) { return r.alert ? [0, r.opened_at === null ? -Infinity : r.opened_at] : [1, 0]; }
  function reorder() {
    const rows = [];
    for (const [k, e] of keys) if (e.row) rows.push([k, e.row]);
    rows.sort((a, b) => {
      const x = sortKey(a[1]), y = sortKey(b[1]);
      return x[0] - y[0] || x[1] - y[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);
    });
    const sig = rows.map((r) => r[0]).join("\u0000");
    if (sig === order) return;
    order = sig;
    const frag = document.createDocumentFragment();
    for (const [k] of rows) frag.appendChild(keys.get(k).tile);
    $("tiles").appendChild(frag);
  }
  function appendPoints(e, pts, limit) {
    const s = e.series;
    const last = s.time.length ? s.time[s.time.length - 1] : -Infinity;
    for (const p of pts) if (p[0] > last || s.time.length === 0) { s.time.push(p[0]); s.value.push(p[1]); s.flag.push(p[2]); }
    const extra = s.time.length - limit;
    if (extra > 0) { s.time.splice(0, extra); s.value.splice(0, extra); s.flag.splice(0, extra); }
  }
  function setKeyed(k) {
    if (keyed === k) return;
    keyed = k;
    $("tiles").hidden = !keyed;
    $("single").hidden = keyed;
  }
  function applyRows(rows) {
    for (const r of rows) {
      const k = r.key === null ? "" : String(r.key);
      const e = entry(k);
      if (!e.row || e.row.alert !== r.alert || e.row.opened_at !== r.opened_at) orderDirty = true;
      e.row = r;
      if (r.points) appendPoints(e, r.points, keyed ? RING : SINGLE_RING);
      if (keyed) {
        if (!e.tile || !observer || visible.has(k) || r.alert || e.alertShown) updateTile(k, e);
        else e.stale = true;  // out of view: its text is set when it scrolls into view
      }
      e.dirty = true;
      if (detailKey === k) refreshDetailNow(r);
    }
    if (keyed && orderDirty) reorder();  // the order changes only with alerts and new keys
    orderDirty = false;
    schedule();
  }

  // ---------------------------------------------------------------- figures and alerts
  function applyFigures(fig, summary) {
    if (summary && summary.threshold !== undefined && summary.threshold !== null) threshold = summary.threshold;
    $("f-readings").textContent = fmtInt(fig.readings);
    const rate = summary && summary.readings_per_s ? summary.readings_per_s : fig.readings_per_s;
    $("f-rate").textContent = fmtInt(rate === null || rate === undefined ? null : Math.round(rate));
    $("f-accuracy").textContent = fmt(summary ? summary.accuracy : null, 4);
    $("f-logloss").textContent = fmt(summary ? summary.log_loss : null, 4);
    $("f-flags").textContent = fmtInt(fig.flags);
    $("f-rejects").textContent = fmtInt(summary && summary.rejected !== undefined ? summary.rejected : 0);
    $("f-steps").textContent = fmtInt(summary && summary.steps !== undefined ? summary.steps : 0);
    $("f-keys").textContent = fmtInt(fig.keys);
    $("f-open").textContent = fmtInt(fig.alerts_open);
    if (fig.pending) {
      $("pending-fig").hidden = false;
      $("f-pending").textContent = fmtInt(Object.values(fig.pending).reduce((a, b) => a + b, 0));
    }
    $("source").textContent = fig.source || "";
    if (fig.finished) setStatus("ended", "stream ended");
  }
  function addAlert(a) {
    const li = el("li", a.event === "open" ? "open" : "close");
    const key = a.key === null || a.key === undefined ? "series" : String(a.key);
    const when = a.event === "open" ? fmtTime(a.opened_at) : fmtTime(a.closed_at);
    li.textContent = a.event + " " + key + " at " + when + ", peak " + fmt(a.peak, 0) + " bpm" + (a.reason ? " (" + a.reason + ")" : "");
    const list = $("alerts");
    list.insertBefore(li, list.firstChild);
    while (list.childElementCount > 200) list.removeChild(list.lastChild);
  }
  function setStatus(cls, text) {
    const s = $("status");
    if (s.classList.contains("ended") && cls === "live") return;
    s.className = "status " + cls;
    s.textContent = text;
  }

  // ---------------------------------------------------------------- detail view
  async function openDetail(k) {
    detailKey = k;
    const res = await fetch(withToken("api/key?key=" + encodeURIComponent(k)));
    if (!res.ok) return;
    const d = await res.json();
    $("detail-title").textContent = k === "" ? "the series" : k;
    refreshDetailNow(d);
    const body = $("detail-alerts").querySelector("tbody");
    body.replaceChildren();
    for (const a of d.alerts) {
      const tr = el("tr");
      for (const v of [a.event, fmtTime(a.start), fmtTime(a.end), fmt(a.peak, 1), fmt(a.mean, 1), fmtTime(a.opened_at), fmtTime(a.closed_at)]) tr.appendChild(el("td", "", v));
      body.appendChild(tr);
    }
    $("detail").hidden = false;
    draw($("detail-chart"), d.series, { axes: true });
  }
  function refreshDetailNow(r) {
    $("detail-now").textContent = "last " + fmt(r.value, 1) + " bpm at " + fmtTime(r.time) + ", p_abnormal " +
      fmt(r.p_abnormal, 3) + ", " + fmtInt(r.readings) + " readings, " + fmtInt(r.flags) + " flagged" +
      (r.alert ? ", alert open" : "");
  }
  function closeDetail() { $("detail").hidden = true; detailKey = undefined; }
  $("detail-close").addEventListener("click", closeDetail);
  $("detail").addEventListener("click", (ev) => { if (ev.target === $("detail")) closeDetail(); });
  document.addEventListener("keydown", (ev) => { if (ev.key === "Escape") closeDetail(); });

  // ---------------------------------------------------------------- data
  async function load() {
    const [stateRes, seriesRes] = await Promise.all([fetch(withToken("api/state")), fetch(withToken("api/series"))]);
    if (!stateRes.ok || !seriesRes.ok) { setStatus("down", "HTTP " + (stateRes.ok ? seriesRes.status : stateRes.status)); return false; }
    const st = await stateRes.json(), series = await seriesRes.json();
    if (st.keys.length) setKeyed(st.keys[0].key !== null);
    for (const [k, s] of Object.entries(series)) { const e = entry(k); e.series = s; e.dirty = true; }
    applyFigures(st.figures, st.summary);
    applyRows(st.keys);
    $("alerts").replaceChildren();
    for (const a of st.alerts) addAlert(a);
    alertsSeen = st.alerts.length;
    return true;
  }
  function listen() {
    const es = new EventSource(withToken("events"));
    es.addEventListener("open", () => setStatus("live", "live"));
    es.addEventListener("error", () => setStatus("down", "reconnecting"));
    es.addEventListener("alert", (ev) => {
      const seq = Number(ev.lastEventId);
      if (!Number.isNaN(seq) && seq < alertsSeen) return;  // already in /api/state
      alertsSeen = Number.isNaN(seq) ? alertsSeen + 1 : seq + 1;
      addAlert(JSON.parse(ev.data));
    });
    es.addEventListener("records", (ev) => {
      const t0 = performance.now();
      const t = JSON.parse(ev.data);
      if (keyed === null && t.records.length) setKeyed(t.records[0].key !== null);
      applyFigures(t.figures, t.summary);
      applyRows(t.records);
      const ms = performance.now() - t0;
      stats.events += 1; stats.handlerMs += ms; stats.maxMs = Math.max(stats.maxMs, ms);
    });
  }
  load().then((ok) => { if (ok) listen(); }).catch(() => setStatus("down", "no connection"));
})();
