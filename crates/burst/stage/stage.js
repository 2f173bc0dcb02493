// The live stage. This page only *watches*: it reads the stage server's /feed (each twin's
// /events, batched) and asks the stage server to fire (POST /fire). It never fires a burst itself:
// a browser sends about 6 requests at a time to one host and would fake the waves.
'use strict';

const ROUTES = ['/io', '/async-io', '/async-io-multi', '/async-io-blocking', '/cpu'];
const DRAW_CAP = 2000;   // bars drawn per panel; beyond, a sample of each lane (said on the page)
const GUTTER = 112;      // px left of the time axis, for the lane labels
const IDLE_MS = 1500;    // a request after this much quiet (a burst from a terminal) starts a new picture
const QUEUE_H = 34, AXIS_H = 22; // px: the strip of requests not in a lane yet; the time axis
const C = { waiting: '#f2b33d', serving: '#1f6fd6', done: '#6aa86a', cut: '#b5b5b5',
            frozen: '#8fd3ff70', lane: ['#f4f6f9', '#ffffff'], axis: '#666', grid: '#e2e2e2' };

let route = localStorage.getItem('stage.route') ?? '/io';
let firing = false;
let dirty = true;          // something to draw; an idle page asks for no frames at all
let scheduled = false;     // a frame is asked for
const NAMES = { pool: 'pool', 'event-loop': 'event loop' };
const release = new Map(); // run id → earliest event time (µs) on either panel: the release
// The time axis keeps its length from burst to burst while N stays the same, so /async-io-multi's
// staircase is drawn half as wide as /io's, not stretched to the same width.
const sticky = { n: null, us: 0 };

// ---- one panel per twin ---------------------------------------------------------------------

class Panel {
  constructor(el) {
    this.el = el;
    this.twin = el.dataset.twin;
    this.canvas = el.querySelector('canvas');
    this.info = null;
    this.up = null;
    this.latencies = [];
    this.reset(null, null, 0);
  }

  reset(run, predictedMs, n, what = null) {
    kick();
    Object.assign(this, { run, predictedMs, n, what, reqs: new Map(), lanes: [], frozen: [],
                          open: 0, lagged: 0, lastEvent: 0, result: null, cut: 0 });
    this.latencies = [];
  }

  // The twin went away: what it held never ends on this page, so it is drawn cut off, not
  // growing forever.
  stopped(nowUs) {
    for (const r of this.reqs.values()) {
      if (r.done === null) { r.done = nowUs; r.cut = true; this.cut++; if (r.serve0 === null) r.serve0 = nowUs; }
    }
    this.cut += this.unseen;
    this.open = 0;
    this.n = this.reqs.size;
    for (const f of this.frozen) if (f.to === null) f.to = nowUs;
  }

  get workers() { return this.info ? this.info.workers : Math.max(this.lanes.length, 1); }
  get t0() { return release.get(this.run) ?? null; }

  state(r) {
    if (r.refused) return 'refused';
    if (r.done !== null) return 'done';
    if (r.serve0 !== null) return 'serving';
    return 'waiting';
  }

  counts() {
    const c = { waiting: 0, serving: 0, done: 0, refused: 0 };
    for (const r of this.reqs.values()) c[this.state(r)]++;
    // Fired by the stage, so the page knows how many were sent: those no loop has picked up yet
    // (behind a frozen one) are waiting too, though the server has said nothing of them.
    if (this.n > this.reqs.size && this.result === null) c.waiting += this.n - this.reqs.size;
    return c;
  }

  onEvent(type, d) {
    const now = Date.now();
    if (d.t_us) this.latencies.push(now - d.t_us / 1000);
    if (type === 'frozen' || type === 'thawed') return this.onFrozen(type, d);
    const run = d.id.includes('-') ? d.id.slice(0, d.id.lastIndexOf('-')) : d.id;
    // A burst fired from a terminal (or curl) while the stage watches: a new picture once the
    // last one is over — at once for a new run of `burst`, after a pause for anything else.
    const over = this.reqs.size > 0 && (run !== this.run || now - this.lastEvent > IDLE_MS);
    if (this.open === 0 && (this.run === null || over)) {
      this.reset(run, null, 0, { route: d.route, elsewhere: true });
    }
    this.lastEvent = now;
    if (!release.has(this.run) || release.get(this.run) > d.t_us) release.set(this.run, d.t_us);
    let r = this.reqs.get(d.id);
    if (!r) {
      r = { id: d.id, wait0: null, serve0: null, done: null, lane: null, status: null };
      this.reqs.set(d.id, r);
      this.open++;
    }
    if (type === 'queued') {
      r.wait0 = d.t_us;
      r.serve0 = null;                 // event loop /io: picked up, now waiting for a slot
    } else if (type === 'picked-up') {
      r.serve0 = d.t_us;
      r.lane = laneOf(d.worker);
      (this.lanes[r.lane] ??= []).push(r);
    } else if (type === 'slot') {
      r.serve0 = d.t_us;
    } else if (type === 'finished') {
      if (r.done === null) this.open--;
      r.done = d.t_us;
      r.status = d.status;
      // Answered without a worker (the drain's 503 to a queued request): turned away, in no lane.
      if (r.lane === null && d.worker === null) { r.refused = true; return; }
      if (r.serve0 === null) r.serve0 = r.wait0 ?? d.t_us;
      if (r.lane === null) { r.lane = laneOf(d.worker); (this.lanes[r.lane] ??= []).push(r); }
    }
  }

  onFrozen(type, d) {
    const lane = laneOf(d.worker);
    if (type === 'frozen') this.frozen.push({ lane, from: d.since_us, to: null });
    else for (const f of this.frozen) if (f.lane === lane && f.to === null) f.to = d.t_us;
  }

  isFrozen(lane) { return this.frozen.some(f => f.lane === lane && f.to === null); }

  // The time this panel's picture needs, µs from its release.
  span(nowUs) {
    if (this.t0 === null) return 0;
    let last = this.t0;
    for (const r of this.reqs.values()) last = Math.max(last, r.done ?? nowUs);
    return Math.max(last - this.t0, (this.predictedMs ?? 0) * 1000) * 1.08;
  }

  // Requests sent (the stage knows how many) that no event has named yet: waiting in a listen
  // queue or behind a frozen loop.
  get unseen() { return this.result === null && this.n > this.reqs.size ? this.n - this.reqs.size : 0; }

  // Live: something still moves, so the page draws every frame.
  get live() { return this.open > 0 || this.unseen > 0 || this.frozen.some(f => f.to === null); }

  draw(spanUs, nowUs) {
    const cv = this.canvas, dpr = window.devicePixelRatio || 1;
    const w = cv.clientWidth, h = cv.clientHeight;
    if (cv.width !== Math.round(w * dpr) || cv.height !== Math.round(h * dpr)) {
      cv.width = Math.round(w * dpr); cv.height = Math.round(h * dpr);
    }
    const g = cv.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    const lanes = this.workers, queueH = QUEUE_H, axisH = AXIS_H;
    const laneH = (h - queueH - axisH) / lanes, left = GUTTER, right = w - 8;
    const t0 = this.t0 ?? nowUs;
    const x = t => left + Math.max(0, t - t0) / spanUs * (right - left);
    for (let k = 0; k < lanes; k++) {
      g.fillStyle = C.lane[k % 2];
      g.fillRect(0, queueH + k * laneH, w, laneH);
      if (this.isFrozen(k)) { g.fillStyle = C.frozen; g.fillRect(0, queueH + k * laneH, GUTTER - 4, laneH); }
    }
    this.drawAxis(g, x, spanUs, t0, h - axisH, queueH, w);
    // Each lane stacks its requests in pick-up order: a staircase on the pool, a block at once on
    // the event loop; at hundreds per lane the rows are thinner than a pixel and read as density.
    // Beyond DRAW_CAP bars, every lane draws 1 request in `every`, evenly (and the page says so).
    const every = Math.max(1, Math.ceil(this.reqs.size / DRAW_CAP));
    let drawn = 0;
    const perLane = this.n ? Math.ceil(this.n / lanes / every) : 0;
    for (let k = 0; k < lanes; k++) {
      const list = (this.lanes[k] ?? []).filter((_, i) => i % every === 0);
      const rows = Math.max(list.length, perLane, 1), rowH = (laneH - 4) / rows;
      const gap = rowH > 6 ? 2 : 0;
      list.forEach((r, i) => {
        drawn++;
        const y = queueH + k * laneH + 2 + i * rowH, bh = Math.max(rowH - gap, 0.5);
        const serve0 = r.serve0 ?? nowUs;
        // No `queued` event (the event loop): a request picked up well after the release waited
        // for its loop since then.
        const wait0 = r.wait0 ?? (serve0 - t0 > 15e3 ? t0 : null);
        if (wait0 !== null && wait0 < serve0) bar(g, C.waiting, x(wait0), x(serve0), y, bh);
        const color = r.cut ? C.cut : r.done !== null ? C.done : C.serving;
        if (r.serve0 !== null) bar(g, color, x(r.serve0), x(r.done ?? nowUs), y, bh);
      });
    }
    this.drawn = drawn;
    this.every = every;
    // A frozen loop, over its bars: everything on it stood still.
    g.fillStyle = C.frozen;
    for (const f of this.frozen) {
      if (f.lane >= lanes || (f.to ?? nowUs) < t0) continue;
      g.fillRect(x(f.from), queueH + f.lane * laneH, Math.max(2, x(f.to ?? nowUs) - x(f.from)), laneH);
    }
    if (queueH) this.drawQueue(g, w, queueH);
  }

  // The requests not in a lane yet: waiting for a worker (pool), or for a loop (event loop).
  drawQueue(g, w, queueH) {
    let waiting = this.unseen;
    for (const r of this.reqs.values()) if (r.lane === null && r.done === null) waiting++;
    g.fillStyle = '#333';
    g.font = '600 15px system-ui, sans-serif';
    g.fillText(this.twin === 'pool' ? 'queue' : 'no loop yet', 4, 21);
    const size = 14, step = 17, fit = Math.floor((w - GUTTER - 40) / step);
    g.fillStyle = C.waiting;
    for (let i = 0; i < Math.min(waiting, fit); i++) g.fillRect(GUTTER + i * step, 9, size, size);
    if (waiting > fit) {
      g.fillStyle = '#333';
      g.fillText(`+${waiting - fit}`, GUTTER + fit * step + 2, 21);
    }
  }

  drawAxis(g, x, spanUs, t0, y, top, w) {
    const spanS = spanUs / 1e6;
    const step = [0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60].find(s => spanS / s <= 8) ?? 120;
    g.font = '15px system-ui, sans-serif';
    g.textAlign = 'center';
    for (let s = 0; s <= spanS + 1e-9; s += step) {
      const px = x(t0 + s * 1e6);
      g.fillStyle = C.grid;
      g.fillRect(px, top, 1, y - top);
      g.fillStyle = C.axis;
      g.fillText(`${+s.toFixed(2)} s`, Math.min(px, w - 18), y + 16);
    }
    g.textAlign = 'start';
  }

  // The words around the canvas: counters, lane labels, verdict, links, "not running".
  render() {
    const c = this.counts(), el = this.el;
    const waitNoun = this.twin === 'pool' ? 'waiting for a worker' : 'waiting';
    setHTML(el.querySelector('.counter'),
      `<span class="w"><b>${c.waiting}</b> ${waitNoun}</span> · ` +
      `<span class="s"><b>${c.serving}</b> being served</span> · <span class="d"><b>${c.done}</b> done</span>` +
      (c.refused ? ` · <span class="r"><b>${c.refused}</b> turned away</span>` : ''));
    const lanes = this.workers, area = el.querySelector('.stage-area');
    const queueH = QUEUE_H;
    const laneH = (area.clientHeight - queueH - AXIS_H) / lanes;
    let labels = '';
    for (let k = 0; k < lanes; k++) {
      const list = this.lanes[k] ?? [];
      const served = list.filter(r => r.done !== null).length, frozen = this.isFrozen(k);
      labels += `<div class="lane-label${frozen ? ' frozen' : ''}" data-worker="${k}" data-served="${served}"` +
        ` style="top:${queueH + k * laneH + 2}px">worker${k}<small>${frozen ? '❄ FROZEN' : `${served} served`}</small></div>`;
    }
    setHTML(el.querySelector('.lanes'), labels);
    el.classList.toggle('is-frozen', this.frozen.some(f => f.to === null));
    const down = el.querySelector('.down');
    down.hidden = this.up !== false;
    let notes = [];
    if (this.every > 1) notes.push(`drawing 1 request in ${this.every} of ${this.reqs.size}; all are counted`);
    if (this.lagged) notes.push(`this page missed ${this.lagged} events (it fell behind); counts may be short`);
    if (this.cut) notes.push(`${this.cut} cut off (grey): the twin stopped before this page saw them end`);
    const w = this.what;
    setHTML(el.querySelector('.what'), !w ? '' : w.elsewhere
      ? `${this.reqs.size} × ${esc(w.route)} from elsewhere (its verdict is where it was fired)`
      : `${this.n} × ${esc(w.route)}${w.model ? ` — model: ${esc(w.model)}` : ''}`);
    const res = this.result;
    let verdict = '', links = '';
    if (res && res.error) verdict = `<span class="bad">✗ ${esc(res.error)}</span>`;
    else if (res) {
      const mark = { ok: '✓', 'not-as-predicted': '✗ NOT as predicted:', failed: '✗ FAILED:' }[res.status];
      verdict = `${mark} ${esc(res.verdict)}`;
      links = `<a href="${res.json}" target="_blank">JSON</a><a href="${res.csv}" target="_blank">CSV</a>`;
    }
    const v = el.querySelector('.verdict');
    v.className = 'verdict' + (res ? (res.status === 'ok' ? ' ok' : ' bad') : '');
    v.title = res ? (res.verdict ?? res.error ?? '') : '';
    setHTML(v, verdict);
    setHTML(el.querySelector('.links'), links + notes.map(n => `<span class="note">${esc(n)}</span>`).join(' · '));
  }

  summary() {
    const c = this.counts();
    const lat = [...this.latencies].sort((a, b) => a - b);
    return {
      up: this.up, info: this.info, run: this.run, ...c, lagged: this.lagged, drawn: this.drawn ?? 0,
      lanes: Array.from({ length: this.workers }, (_, k) => ({
        worker: `worker${k}`, served: (this.lanes[k] ?? []).filter(r => r.done !== null).length,
        frozen: this.isFrozen(k) })),
      frozenSpans: this.frozen.length, frozenLanes: new Set(this.frozen.map(f => f.lane)).size,
      result: this.result,
      latency_ms: lat.length ? { n: lat.length, p50: lat[Math.floor(lat.length * 0.5)],
                                  p99: lat[Math.min(lat.length - 1, Math.floor(lat.length * 0.99))],
                                  max: lat[lat.length - 1] } : null,
    };
  }
}

function bar(g, color, x0, x1, y, h) {
  g.fillStyle = color;
  g.fillRect(x0, y, Math.max(x1 - x0, 1.5), h);
}

function laneOf(worker) { return worker ? parseInt(worker.replace(/\D+/g, ''), 10) || 0 : 0; }
function esc(s) { return String(s).replace(/[&<>"]/g, ch => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[ch]); }
function setHTML(el, html) { if (el.dataset.html !== html) { el.innerHTML = html; el.dataset.html = html; } }

const panels = Object.fromEntries(
  [...document.querySelectorAll('.panel')].map(el => [el.dataset.twin, new Panel(el)]));

// ---- the feed: every twin's events, through the stage server ---------------------------------

function onMessage(m) {
  const p = panels[m.twin];
  dirty = true;
  kick();
  switch (m.type) {
    case 'hello':
      // A new process (restarted): nothing of the old one's picture is true of it.
      if (p.info && p.info.pid !== m.data.pid) p.reset(null, null, 0);
      if (p.result && p.result.error) p.result = null;
      p.info = m.data; p.up = true;
      break;
    case 'down':
      if (p.up) p.stopped(Date.now() * 1000);
      p.up = false;
      p.el.querySelector('.down').innerHTML =
        `<b>The ${m.twin} twin is not running</b><span>at ${esc(m.url)}</span>` +
        `<span>start it with</span><code>${esc(m.start)}</code>` +
        `<span>this panel comes alive by itself when it starts</span>`;
      break;
    case 'firing':     // from this page, another one, or curl: no second burst meanwhile
      busy(true);
      Object.assign(frames, { count: 0, maxGapMs: 0, last: 0 });
      if (m.n !== sticky.n) Object.assign(sticky, { n: m.n, us: 0 });
      for (const t of m.twins) panels[t.twin].reset(m.run, t.predicted_ms, m.n, { route: m.route, model: t.model });
      status(`burst ${m.burst}: firing ${m.n} × ${m.route} at ${m.twins.map(t => NAMES[t.twin]).join(' and ')}` +
             (m.route.startsWith('/cpu') && m.twins.length > 1
               ? ' — both share this machine\'s cores: each takes about twice the model\'s time' : ''));
      break;
    case 'result':
      busy(false);
      for (const t of m.twins) {
        panels[t.twin].result = t;
        if (m.n === sticky.n) sticky.us = Math.max(sticky.us, panels[t.twin].span(Date.now() * 1000));
      }
      if (m.chart) {
        document.querySelector('#chart img').src = m.chart;
        document.getElementById('chart-button').disabled = false;
      }
      status(`burst ${m.burst}: ${m.n} × ${m.route} done`);
      break;
    case 'lagged':   // from a twin (its watcher fell behind) or from the stage (this page did)
      for (const q of p ? [p] : Object.values(panels)) q.lagged += m.data.missed;
      break;
    default:
      if (p) p.onEvent(m.type, m.data);
  }
}

function connect() {
  const feed = new EventSource('/feed');
  let lost = false;
  feed.onmessage = e => { for (const m of JSON.parse(e.data)) onMessage(m); };
  feed.onerror = () => {
    lost = true;
    document.body.classList.add('lost');
    status('the stage server is not answering (is `burst stage` still running?); retrying…', true);
  };
  // Back after the stage restarted: start from what it knows now, not from this page's past.
  feed.onopen = () => { if (lost) location.reload(); else status('watching both twins'); };
}

// ---- drawing: one frame per screen refresh, both panels on one time axis ---------------------

// How smooth the page stayed: the longest gap between two frames since the last burst began.
const frames = { count: 0, maxGapMs: 0, last: 0 };

// Ask for a frame; frames keep coming only while something moves, so an idle page costs nothing.
function kick() {
  if (!scheduled) { scheduled = true; requestAnimationFrame(frame); }
}

function frame(at) {
  scheduled = false;
  if (frames.last) frames.maxGapMs = Math.max(frames.maxGapMs, at - frames.last);
  frames.last = at;
  const all = Object.values(panels);
  const live = all.some(p => p.live);
  if (!dirty && !live) { frames.last = 0; return; }
  dirty = false;
  frames.count++;
  const nowUs = Date.now() * 1000;
  // Both panels on one time axis when they show bursts of the same N (fired together, or one
  // after the other); the axis keeps the length of earlier bursts of that N.
  const spans = all.map(p => Math.max(1e6, p.span(nowUs), p.n && p.n === sticky.n ? sticky.us : 0));
  const same = all.every(p => p.n === all[0].n || p.reqs.size === 0);
  all.forEach((p, i) => { p.draw(same ? Math.max(...spans) : spans[i], nowUs); p.render(); });
  // A gap between frames counts only while frames follow each other, not across idle time.
  if (live) kick(); else frames.last = 0;
}
window.addEventListener('resize', () => { dirty = true; kick(); });

// ---- controls: the stage server fires; the page only asks -----------------------------------

const routesEl = document.getElementById('routes');
ROUTES.forEach((r, i) => {
  const b = document.createElement('button');
  b.textContent = r; b.dataset.route = r; b.title = `key ${i + 1}`;
  b.setAttribute('role', 'radio');
  b.innerHTML = `${r} <kbd>${i + 1}</kbd>`;
  b.onclick = () => pickRoute(r);
  routesEl.appendChild(b);
});
function pickRoute(r) {
  route = r;
  localStorage.setItem('stage.route', r);
  for (const b of routesEl.children) b.setAttribute('aria-checked', String(b.dataset.route === r));
}
pickRoute(route);

const nEl = document.getElementById('n');
nEl.value = localStorage.getItem('stage.n') ?? nEl.value;
nEl.addEventListener('change', () => { localStorage.setItem('stage.n', nEl.value); nEl.blur(); });
const PRESETS = [1, 4, 16, 100, 1000];
function stepN(by) {
  const n = +nEl.value || 16;
  const next = by > 0 ? PRESETS.find(p => p > n) : PRESETS.slice().reverse().find(p => p < n);
  nEl.value = next ?? n;
  localStorage.setItem('stage.n', nEl.value);
}

function busy(on) {
  firing = on;
  document.querySelectorAll('[data-at]').forEach(b => { b.disabled = on; });
}

async function fire(at) {
  if (firing) return;
  busy(true);
  try {
    const q = new URLSearchParams({ route, n: nEl.value, at });
    const res = await fetch(`/fire?${q}`, { method: 'POST' });
    const body = await res.json();
    if (!res.ok) {
      status(`${body.parameter ? `${body.parameter}: ` : ''}${body.error}` +
             `${body.allowed ? ` (allowed: ${body.allowed})` : ''}${body.detail ? `: ${body.detail}` : ''}`, true);
    }
  } catch (e) {
    status('the stage server is not answering (is `burst stage` still running?)', true);
  } finally {
    busy(false);
  }
}
document.querySelectorAll('[data-at]').forEach(b => { b.onclick = () => fire(b.dataset.at); });

function toggleChart(show) {
  const chart = document.getElementById('chart');
  const none = document.getElementById('chart-button').disabled;
  if (none && show !== false) return status('no chart yet: fire a burst first (B)');
  chart.hidden = !(show ?? chart.hidden);
}
document.getElementById('chart-button').onclick = () => toggleChart();

document.addEventListener('keydown', e => {
  if (e.altKey || e.ctrlKey || e.metaKey) return;
  // Typing a number of requests: digits, arrows and editing keys are the field's; the letters
  // and Enter still fire.
  if (e.target === nEl && /^([0-9]|Arrow.*|Backspace|Delete|Tab|Home|End)$/.test(e.key)) return;
  if (e.target === nEl) nEl.blur();
  dirty = true;
  kick();
  const k = e.key.toLowerCase();
  if (k >= '1' && k <= String(ROUTES.length)) pickRoute(ROUTES[+k - 1]);
  else if (k === 'p') fire('pool');
  else if (k === 'a') fire('event-loop');
  // A presenter's clicker sends PageDown / → / Space: each fires both.
  else if (['b', ' ', 'enter', 'pagedown', 'arrowright'].includes(k)) fire('both');
  else if (k === 'arrowup') stepN(1);
  else if (k === 'arrowdown') stepN(-1);
  else if (k === 'c') toggleChart();
  else if (k === 'escape') toggleChart(false);
  else return;
  e.preventDefault();
});

function status(text, bad) {
  const el = document.getElementById('status');
  el.textContent = text;
  el.title = text;
  el.style.color = bad ? '#c62828' : '';
}

// For tests and benchmarks: what the page shows, as data.
window.stage = {
  summary: () => Object.fromEntries(Object.entries(panels).map(([k, p]) => [k, p.summary()])),
  frames: () => ({ count: frames.count, maxGapMs: frames.maxGapMs }),
};

connect();
kick();
