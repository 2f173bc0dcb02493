// The live stage. This page only *watches*: it reads the stage server's /feed (each twin's
// /events, batched) and asks the stage server to fire (POST /fire) or to give a burst up
// (POST /cancel). It never fires a burst itself: a browser sends about 6 requests at a time to
// one host and would fake the waves.
'use strict';

const ROUTES = ['/io', '/async-io', '/async-io-multi', '/async-io-blocking', '/cpu'];
const DRAW_CAP = 2000;   // bars drawn per panel; beyond, a sample of each lane (said on the page)
const GUTTER = 112;      // px left of the time axis, for the lane labels
const IDLE_MS = 1500;    // a request after this much quiet (a burst from a terminal) starts a new picture
const QUEUE_H = 34, AXIS_H = 22; // px: the strip of requests not in a lane yet; the time axis
const FROZEN_H = 5;      // px: the strip along a lane's top while its loop is frozen
const N_COMMIT_MS = 1500; // a typed N is taken after this much quiet, so 1–5 pick routes again
const C = { waiting: '#f2b33d', serving: '#1f6fd6', done: '#6aa86a', cut: '#b5b5b5',
            frozen: '#3aa7e8', model: '#222', shed: '#c62828', lane: ['#f4f6f9', '#ffffff'], axis: '#666',
            grid: '#e2e2e2' };
const DEFAULTS = { route: '/io', n: '16', rate: '12' };
// Steady traffic (key T): λ requests a second for STEADY_S seconds, an open loop the stage sends.
const RATES = [1, 2, 4, 6, 8, 12, 16, 24, 40, 100, 200];
const STEADY_S = 5;
// Steady traffic waits 500 ms a request (`ms=500`), as the workshop's part 2: a pool of 4 then
// serves μ = 8 a second, and 12 a second is over it.
const STEADY_MS = 500;

let route = localStorage.getItem('stage.route') ?? DEFAULTS.route;
let steadyMode = localStorage.getItem('stage.mode') === 'steady';
let firing = false;        // a burst runs (from this page, another one, or curl)
let canFire = true;        // this page's machine is the presenter's
let replaying = false;     // the stage plays recordings (burst stage --replay)
let dirty = true;          // something to draw; an idle page asks for no frames at all
let scheduled = false;     // a frame is asked for
let plan = null;           // what the model predicts for the route and N picked (GET /plan)
let pending = null;        // a long burst waiting for a second press: { at, until }
let lostAtUs = null;       // the stage server stopped answering: nothing grows after this
let notice = '';           // said above the panels for the burst shown (what a replay plays)
// The twins' own panel names, as the room says them; any other panel is titled by its name.
const TITLES = { pool: 'pool', 'event-loop': 'event loop' };
const title = name => TITLES[name] ?? name;
const release = new Map(); // run id → earliest event time (µs) of that run: its release
// The time axis keeps its length from burst to burst while N stays the same for the IO-bound
// routes (so /async-io-multi's staircase is drawn half as wide as /io's, not stretched to the same
// width), and while N and the route stay the same for the others. The length is measured from the
// requests' own end times, never from the clock: a page loaded later draws what one that watched
// drew.
const IO_BOUND = ['/io', '/async-io', '/async-io-multi'];
const sticky = new Map(); // axis key → µs

// ---- one panel per twin ---------------------------------------------------------------------

class Panel {
  constructor(el, kind) {
    this.el = el;
    this.twin = el.dataset.twin;
    this.declared = kind;          // the twins' kinds, known by name; others' from their hello
    this.canvas = el.querySelector('canvas');
    this.info = null;
    this.up = null;
    this.latencies = [];
    this.reset(null, null, 0);
  }

  reset(run, predictedMs, n, what = null) {
    kick();
    Object.assign(this, { run, predictedMs, n, what, reqs: new Map(), lanes: [], frozen: [],
                          open: 0, lagged: 0, lastEvent: 0, result: null, cut: 0, cutUnseen: 0,
                          waitingTurn: false, stoppedAt: null, burst: null, steady: null, shed: 0 });
    this.latencies = [];
  }

  // The twin went away: what it held never ends on this page, so it is drawn cut off, not
  // growing forever.
  stopped(nowUs) {
    for (const r of this.reqs.values()) {
      if (r.done === null) { r.done = nowUs; r.cut = true; this.cut++; if (r.serve0 === null) r.serve0 = nowUs; }
    }
    this.cutUnseen = this.unseen;
    this.cut += this.cutUnseen;
    this.open = 0;
    this.stoppedAt = nowUs;
    for (const f of this.frozen) if (f.to === null) f.to = nowUs;
  }

  // The burst is over: loops are no longer frozen, and a request this page never saw end was
  // cut off (the twin stopped) or given up (cancelled).
  settle(nowUs) {
    const end = this.endUs(nowUs);
    for (const f of this.frozen) if (f.to === null) f.to = end;
    const cancelled = this.result && this.result.status === 'cancelled';
    for (const r of this.reqs.values()) {
      if (r.done !== null) continue;
      r.done = end;
      if (cancelled) r.cancelled = true; else r.cut = true;
      if (r.serve0 === null && r.lane !== null) r.serve0 = end;
    }
    this.open = 0;
  }

  get kind() { return this.info?.kind ?? this.declared ?? null; }

  // What the panel watches, under its name: a twin (like which stack), or a real stack's
  // versions.
  get subtitle() {
    const i = this.info, kind = this.kind;
    const style = kind === 'pool' ? 'WSGI' : kind === 'event-loop' ? 'ASGI' : '';
    if (!i) return style ? `${style}-style` : '';
    if (i.server === 'pool-server' || i.server === 'async-server') {
      return `${style}-style twin · like ${kind === 'pool' ? 'gunicorn + Flask' : 'uvicorn + FastAPI'}`;
    }
    const versions = String(i.version ?? '').split(', ').slice(0, 2).join(', ');
    return `${style} · the real thing: ${versions}`;
  }

  // A lane per worker thread: gunicorn's gthread (--threads) has workers × threads.
  get workers() { return this.info ? this.info.workers * (this.info.threads || 1) : Math.max(this.lanes.length, 1); }
  get t0() { return release.get(this.run) ?? null; }
  get key() { return this.what && !this.what.elsewhere ? `${this.n} ${this.what.route}` : null; }
  get axisKey() {
    if (!this.what || this.what.elsewhere || this.steady) return null;
    const path = this.what.route.split('?')[0];
    return IO_BOUND.includes(path) && !this.what.route.includes('ms=') ? `${this.n}` : this.key;
  }

  state(r) {
    if (r.shed) return 'shed';
    if (r.cut) return 'cut';
    if (r.cancelled) return 'cancelled';
    if (r.done !== null) return 'done';
    if (r.serve0 !== null) return 'serving';
    return 'waiting';
  }

  counts() {
    const c = { waiting: 0, serving: 0, done: 0, cut: this.cutUnseen, cancelled: 0, shed: 0 };
    for (const r of this.reqs.values()) c[this.state(r)]++;
    // Fired by the stage, so the page knows how many were sent: those no loop has picked up yet
    // (behind a frozen one) are waiting too, though the server has said nothing of them.
    c.waiting += this.unseen;
    if (this.result && this.result.status === 'cancelled') c.cancelled += this.unseen0;
    return c;
  }

  onEvent(type, d) {
    const now = Date.now();
    if (d.t_us) this.latencies.push(now - d.t_us / 1000);
    if (type === 'frozen' || type === 'thawed') return this.onFrozen(type, d);
    if (typeof d.id !== 'string') return;
    const run = d.id.includes('-') ? d.id.slice(0, d.id.lastIndexOf('-')) : d.id;
    // A burst fired from a terminal (or curl) while the stage watches: a new picture once the
    // last one is over — at once for a new run of `burst`, after a pause for anything else.
    const over = this.reqs.size > 0 && (run !== this.run || now - this.lastEvent > IDLE_MS);
    if (this.open === 0 && !firing && (this.run === null || over)) {
      this.reset(run, null, 0, { route: d.route, elsewhere: true });
      // The footer's last verdict is of another burst now.
      status(`${title(this.twin)}: a burst from elsewhere`);
    }
    if (run !== this.run && !this.what?.elsewhere) return; // another run's stragglers
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
      // 499: its client gave up (Esc, Ctrl-C). Skipped before a worker took it: never served,
      // so it leaves the queue and takes no place in a lane.
      if (d.status === 499) { r.cancelled = true; if (r.lane === null) return; }
      // Shed: turned away at once over a limit (--limit-concurrency): never in a lane.
      if (d.shed) { r.shed = true; this.shed++; return; }
      // The drain's 503 (a request waiting when the twin began to stop): cut off — without a
      // worker on the pool (it never got one), at pick-up on the event loop.
      if (d.status === 503) r.cut = true;
      if (r.lane === null && d.worker === null) { r.cut = true; return; }
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

  // Where an unfinished request's bar ends: now while the burst runs; at the burst's end once
  // its result is in (a request whose end this page never saw does not grow with the clock).
  endUs(nowUs) {
    if (this.result && this.t0 !== null && this.result.wall_ms !== undefined) {
      return this.t0 + this.result.wall_ms * 1000;
    }
    if (this.stoppedAt) return this.stoppedAt;
    return lostAtUs ?? nowUs;
  }

  // The time this panel's picture needs, µs from its release.
  span(nowUs) {
    if (this.t0 === null) return 0;
    const end = this.endUs(nowUs);
    let last = this.t0;
    for (const r of this.reqs.values()) last = Math.max(last, r.done ?? end);
    return Math.max(last - this.t0, (this.predictedMs ?? 0) * 1000) * 1.08;
  }

  // Requests sent (the stage knows how many) that no event has named yet: waiting in a listen
  // queue or behind a frozen loop.
  get unseen() {
    if (this.result !== null || this.waitingTurn || this.stoppedAt) return 0;
    // Steady traffic is sent over time: only those due by now have been sent.
    const sent = this.steady
      ? Math.min(this.n, Math.floor(this.steady.rate * (Date.now() - this.steady.since) / 1000) + 1)
      : this.n;
    return sent > this.reqs.size ? sent - this.reqs.size : 0;
  }
  get unseen0() { return this.n > this.reqs.size ? this.n - this.reqs.size : 0; }

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
    const t0 = this.t0 ?? nowUs, end = this.endUs(nowUs);
    const x = t => left + Math.max(0, t - t0) / spanUs * (right - left);
    for (let k = 0; k < lanes; k++) {
      g.fillStyle = C.lane[k % 2];
      g.fillRect(0, queueH + k * laneH, w, laneH);
    }
    this.drawAxis(g, x, spanUs, t0, h - axisH, queueH, w);
    // Each lane stacks its requests in pick-up order: a staircase on the pool, a block at once on
    // the event loop; at hundreds per lane the rows are thinner than a pixel and read as density.
    // Beyond DRAW_CAP bars, every lane draws 1 request in `every`, evenly (and the page says so).
    const every = Math.max(1, Math.ceil(this.reqs.size / DRAW_CAP));
    let drawn = 0;
    // Rows are kept for the whole burst while it runs; once given up, only for what was picked up
    // (1,000 × /io stopped after 4 s: sixteen bars, not sixteen hairlines in room for a thousand).
    const givenUp = this.result && this.result.status === 'cancelled';
    const perLane = this.n && !givenUp ? Math.ceil(this.n / lanes / every) : 0;
    for (let k = 0; k < lanes; k++) {
      const list = (this.lanes[k] ?? []).filter((_, i) => i % every === 0);
      const rows = Math.max(list.length, perLane, 1), rowH = (laneH - 4 - FROZEN_H) / rows;
      const gap = rowH > 6 ? 2 : 0;
      list.forEach((r, i) => {
        drawn++;
        const y = queueH + k * laneH + 2 + FROZEN_H + i * rowH, bh = Math.max(rowH - gap, 0.5);
        const serve0 = r.serve0 ?? end;
        // No `queued` event (the event loop): a request picked up well after the release waited
        // for its loop since then.
        const wait0 = r.wait0 ?? (serve0 - t0 > 15e3 ? t0 : null);
        if (wait0 !== null && wait0 < serve0) bar(g, C.waiting, x(wait0), x(serve0), y, bh);
        const color = r.cut || r.cancelled ? C.cut : r.done !== null ? C.done : C.serving;
        if (r.serve0 !== null) bar(g, color, x(r.serve0), x(r.done ?? end), y, bh);
      });
    }
    this.drawn = drawn;
    this.every = every;
    // A frozen loop: a strip along the top of its lane for as long as it stood still — beside
    // the bars, never over them, so they keep the legend's colours.
    g.fillStyle = C.frozen;
    for (const f of this.frozen) {
      if (f.lane >= lanes || (f.to ?? end) < t0) continue;
      g.fillRect(x(f.from), queueH + f.lane * laneH + 1, Math.max(2, x(f.to ?? end) - x(f.from)), FROZEN_H);
    }
    // The model's line: where it says the last request ends.
    if (this.predictedMs && this.t0 !== null) {
      const px = x(t0 + this.predictedMs * 1000);
      g.save();
      g.strokeStyle = C.model; g.lineWidth = 2; g.setLineDash([6, 5]);
      g.beginPath(); g.moveTo(px, queueH); g.lineTo(px, h - axisH); g.stroke();
      g.restore();
      g.fillStyle = C.model;
      g.font = '600 13px system-ui, sans-serif';
      g.textAlign = px > w - 70 ? 'right' : 'left';
      g.fillText('model', px + (px > w - 70 ? -4 : 4), queueH + 12);
      g.textAlign = 'start';
    }
    if (queueH) this.drawQueue(g, w, queueH);
  }

  // The requests not in a lane yet: waiting for a worker (pool), or for a loop (event loop).
  drawQueue(g, w, queueH) {
    let waiting = this.unseen;
    for (const r of this.reqs.values()) if (r.lane === null && r.done === null) waiting++;
    g.fillStyle = '#333';
    g.font = '600 15px system-ui, sans-serif';
    const label = this.kind === 'pool' ? 'queue' : 'not picked up';
    g.fillText(label, 4, 21);
    const from = Math.max(GUTTER, g.measureText(label).width + 14);
    // Room at the end for the count of those that do not fit ("+954"), measured, not guessed.
    const room = g.measureText(`+${waiting}`).width + 8;
    const size = 14, step = 17, fit = Math.max(0, Math.floor((w - from - room) / step));
    g.fillStyle = C.waiting;
    for (let i = 0; i < Math.min(waiting, fit); i++) g.fillRect(from + i * step, 9, size, size);
    if (waiting > fit) {
      g.fillStyle = '#333';
      g.fillText(`+${waiting - fit}`, from + fit * step + 2, 21);
    }
    // Shed at once (503): counted at the strip's right end, in red.
    if (this.shed) {
      g.fillStyle = C.shed;
      g.textAlign = 'right';
      g.fillText(`✕ ${this.shed} shed`, w - 6, 21);
      g.textAlign = 'start';
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
    const c = this.counts(), el = this.el, four = layoutOf() === 'four';
    setHTML(el.querySelector('h2 small'), esc(this.subtitle));
    // The long words only while they fit: with cut-off or cancelled counts beside them, short.
    const waitNoun = this.kind === 'pool' && !four && !c.cut && !c.cancelled && !this.steady ? 'waiting for a worker' : 'waiting';
    // Steady traffic: λ, μ and L — the requests in the server now (waiting or being served).
    const st = this.steady;
    const little = st ? `<span class="l">λ <b>${+st.rate.toFixed(1)}</b>/s · μ <b>${st.mu ? +st.mu.toFixed(1) + '/s' : 'CPU, memory'}</b>` +
      ` · L <b>${c.waiting + c.serving}</b></span> · ` : '';
    setHTML(el.querySelector('.counter'), little +
      `<span class="w"><b>${c.waiting}</b> ${waitNoun}</span> · ` +
      `<span class="s"><b>${c.serving}</b> ${st ? 'served' : 'being served'}</span> · <span class="d"><b>${c.done}</b> done</span>` +
      (c.cut ? ` · <span class="r"><b>${c.cut}</b> cut off</span>` : '') +
      (c.cancelled ? ` · <span class="x"><b>${c.cancelled}</b> cancelled</span>` : '') +
      (c.shed ? ` · <span class="r"><b>${c.shed}</b> shed (503)</span>` : ''));
    const lanes = this.workers, area = el.querySelector('.stage-area');
    const queueH = QUEUE_H;
    const laneH = (area.clientHeight - queueH - AXIS_H) / lanes;
    let labels = '';
    for (let k = 0; k < lanes; k++) {
      const list = this.lanes[k] ?? [];
      const served = list.filter(r => r.done !== null && !r.cut && !r.cancelled).length;
      const frozen = this.isFrozen(k);
      // A lane too short for two lines gets one.
      const compact = laneH < 44 ? ' compact' : '';
      labels += `<div class="lane-label${frozen ? ' frozen' : ''}${compact}" data-worker="${k}" data-served="${served}"` +
        ` style="top:${queueH + k * laneH + 2}px" title="${served} served">worker${k}` +
        `<small>${frozen ? '❄ FROZEN' : compact ? `· ${served}` : `${served} served`}</small></div>`;
    }
    setHTML(el.querySelector('.lanes'), labels);
    el.classList.toggle('is-frozen', this.frozen.some(f => f.to === null));
    const down = el.querySelector('.down');
    down.hidden = this.up !== false;
    let notes = [];
    if (this.every > 1) notes.push(`drawing 1 request in ${this.every} of ${this.reqs.size}; all are counted`);
    if (this.lagged) notes.push(`this page missed ${this.lagged} events (it fell behind); counts may be short`);
    if (this.cut) notes.push(`${this.cut} cut off: the server stopped before it served them`);
    const spread = this.unevenLanes();
    if (spread) notes.push(spread);
    const w = this.what;
    const whatEl = el.querySelector('.what');
    setHTML(whatEl, !w ? '' : w.elsewhere
      ? `${this.reqs.size} × ${esc(w.route)} from elsewhere (its verdict is where it was fired)`
      : this.waitingTurn ? `${this.n} × ${esc(w.route)} — next, one server at a time (at once, they would share the cores)`
      : st ? `${+st.rate.toFixed(1)}/s × ${seconds(st.durationMs)} of ${esc(w.route)}${w.model ? ` — model: ${esc(w.model)}` : ''}`
      : `${this.n} × ${esc(w.route)}${w.model ? ` — model: ${esc(w.model)}` : ''}`);
    whatEl.title = whatEl.textContent; // the whole line, where the panel cuts it off
    const res = this.result;
    let verdict = '', links = '';
    if (res && res.error) verdict = `<span class="bad">✗ ${esc(res.error)}</span>`;
    else if (res) {
      const mark = { ok: '✓', 'not-as-predicted': '✗', failed: '✗ FAILED:', cancelled: '■' }[res.status] ?? '';
      // A figure keeps its unit on its line ("4 ms", not "4⏎ms").
      verdict = `${mark} ${esc(res.verdict).replace(/(\d) (ms|s)\b/g, '$1&nbsp;$2')}`;
      if (res.little) verdict += `<br><span class="little">${esc(res.little.line)}</span>`;
      if (res.json) links = `<a href="${res.json}" target="_blank">JSON</a><a href="${res.csv}" target="_blank">CSV</a>`;
      if (res.replay) links += `<a href="${res.replay}" download>replay file</a>`;
    }
    const v = el.querySelector('.verdict');
    v.className = 'verdict' + (res ? (res.status === 'ok' ? ' ok' : res.status === 'cancelled' ? ' off' : ' bad') : '') +
      (verdict.length > 180 ? ' long' : '');
    v.title = res ? (res.verdict ?? res.error ?? '') : '';
    setHTML(v, verdict);
    setHTML(el.querySelector('.links'), links + notes.map(n => `<span class="note">${esc(n)}</span>`).join(' · '));
    el.querySelector('.links').title = notes.join(' · ');
  }

  // Worker processes that each accept what they can (uvicorn's, gunicorn's) share a burst unevenly:
  // said in the room's words when the lanes show it. Not of a twin: its pool has one queue and its
  // loops get connections from one acceptor, so uneven lanes there (steady traffic from a
  // terminal) have another cause.
  unevenLanes() {
    if (this.steady || !this.info || this.reqs.size < 2 * this.workers) return '';
    if (['pool-server', 'async-server'].includes(this.info.server)) return '';
    const served = Array.from({ length: this.workers }, (_, k) => (this.lanes[k] ?? []).length);
    const most = Math.max(...served), least = Math.min(...served);
    if (most - least < 2 || served.reduce((a, b) => a + b, 0) < this.reqs.size) return '';
    const k = served.indexOf(most), who = String(this.info.server ?? title(this.twin)).split(' + ')[0];
    const fewest = served.filter(n => n === least).length;
    const rest = least === 0 ? `${fewest === 1 ? 'one' : fewest} took none` : `${fewest === 1 ? 'one' : fewest} took ${least}`;
    return `worker${k} took ${most} of ${this.reqs.size}, ${rest}: ${who}'s workers race to accept`;
  }

  summary() {
    const c = this.counts();
    const lat = [...this.latencies].sort((a, b) => a - b);
    return {
      up: this.up, info: this.info, kind: this.kind, run: this.run, ...c, uneven: this.unevenLanes(), lagged: this.lagged, drawn: this.drawn ?? 0,
      steady: this.steady,
      lanes: Array.from({ length: this.workers }, (_, k) => ({
        worker: `worker${k}`, served: (this.lanes[k] ?? []).filter(r => r.done !== null && !r.cut && !r.cancelled).length,
        frozen: this.isFrozen(k) })),
      frozenSpans: this.frozen.length, frozenLanes: new Set(this.frozen.map(f => f.lane)).size,
      result: this.result, spanUs: this.drawnSpanUs ?? 0, predictedMs: this.predictedMs,
      t0: this.t0, lastDoneUs: Math.max(0, ...[...this.reqs.values()].map(r => r.done ?? 0)),
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

function laneOf(worker) { return typeof worker === 'string' ? parseInt(worker.replace(/\D+/g, ''), 10) || 0 : 0; }
function esc(s) { return String(s).replace(/[&<>"']/g, ch => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[ch]); }
function setHTML(el, html) { if (el.dataset.html !== html) { el.innerHTML = html; el.dataset.html = html; } }
function seconds(ms) {
  if (ms === null || ms === undefined) return '';
  const s = ms / 1000;
  if (s >= 90) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return s >= 10 ? `${Math.round(s)} s` : `${+s.toFixed(1)} s`;
}

// The panels: the stage server writes one into the page for each server it watches (its
// --target NAMEs, in order): two side by side, or four in two rows of two, each real stack beside
// its twin.
const panels = {};
function layoutOf() { return Object.keys(panels).length > 2 ? 'four' : 'two'; }
// The feed names the panels too: a page from a stage that watches others is loaded again.
function buildPanels(list) {
  if (list.map(p => p.twin).join('\n') !== Object.keys(panels).join('\n')) location.reload();
}
// The fire buttons say what they fire at: with four panels, every server of a kind.
function fireWords() {
  const n = Object.keys(panels).length;
  const words = n > 2 ? { pool: 'pools', 'event-loop': 'event loops', all: `all ${n}` }
                      : { pool: 'pool', 'event-loop': 'event loop', all: n === 2 ? 'both' : 'fire' };
  for (const [at, w] of Object.entries(words)) document.querySelector(`[data-at="${at}"] .what-at`).textContent = w;
}

// ---- the feed: every twin's events, through the stage server ---------------------------------

function onMessage(m) {
  const p = panels[m.twin];
  dirty = true;
  kick();
  switch (m.type) {
    case 'mode':
      if (Array.isArray(m.panels)) buildPanels(m.panels);
      canFire = m.can_fire;
      replaying = !!m.replay;
      document.body.classList.toggle('replay', replaying);
      document.body.classList.toggle('watch-only', !canFire);
      if (!canFire) status('watching — only the presenter\'s machine fires');
      else if (replaying) status('REPLAY: recorded bursts, no twins running');
      busy(firing);
      break;
    case 'hello':
      // A new process (restarted): nothing of the old one's picture is true of it.
      if (p.info && p.info.pid !== m.data.pid) p.reset(null, null, 0);
      if (p.result && p.result.error) p.result = null;
      p.info = m.data; p.up = true;
      askPlan();
      break;
    case 'down':
      if (p.up) p.stopped(Date.now() * 1000);
      p.up = false;
      {
        // The twins are "the pool twin"; a real stack is called by its name.
        const who = TITLES[m.twin] ? `The ${esc(title(m.twin))} twin` : esc(m.twin);
        const start = String(m.start ?? '');
        const how = start.startsWith('start it with `')
          ? `<span>start it with</span><code>${esc(start.slice(15, -1))}</code>` : `<span>${esc(start)}</span>`;
        p.el.querySelector('.down').innerHTML = m.full
          ? `<b>${who} is running, but not watched</b><span>at ${esc(m.url)}</span>` +
            `<span>${esc(m.why)}</span><span>this panel comes alive by itself when a place is free</span>`
          : m.why && !String(m.why).startsWith('not running')
            ? `<b>${who} is not watched</b><span>at ${esc(m.url)}</span><span>${esc(m.why)}</span>` +
              `<span>this panel comes alive by itself when it can</span>`
            : `<b>${who} is not running</b><span>at ${esc(m.url)}</span>${how}` +
              `<span>this panel comes alive by itself when it starts</span>`;
      }
      askPlan();
      break;
    case 'firing':     // from this page, another one, or curl: no second burst meanwhile
      busy(true);
      Object.assign(frames, { count: 0, maxGapMs: 0, last: 0 });
      m.twins.forEach((t, i) => {
        panels[t.twin].reset(t.run ?? m.run, t.predicted_ms, m.n, { route: m.route, model: t.model, note: m.note });
        if (m.mode === 'steady') {
          panels[t.twin].steady = { rate: m.rate, durationMs: m.duration_ms, mu: t.mu ?? null, since: Date.now() };
        }
        panels[t.twin].waitingTurn = m.sequential && i > 0;
        panels[t.twin].burst = m.burst;
      });
      status(`burst ${m.burst}: ${m.mode === 'steady' ? `${m.rate}/s for ${seconds(m.duration_ms)} (${m.n})` : m.n} × ${m.route} at ${m.twins.length === Object.keys(panels).length && m.twins.length > 1 ? (m.twins.length === 2 ? 'both' : 'all') : m.twins.map(t => title(t.twin)).join(', ')}` +
             (m.sequential ? ', one after the other' : ''));
      notice = m.replay_note ?? '';
      break;
    case 'cancelling':
      status(`burst ${m.burst}: stopping — the twins skip what they have not picked up`);
      break;
    case 'result':
      for (const t of m.twins) {
        const q = panels[t.twin];
        if (!q) continue;
        q.result = Object.assign({}, t, { replay: m.recording ?? null });
        q.waitingTurn = false;
        // The model the verdict was judged by (CPU work: from the CPU time the server measured) —
        // when it judged every request; a burst that failed keeps the model it was fired with,
        // and one given up has none left to show.
        const judged = t.status === 'ok' || t.status === 'not-as-predicted';
        if (judged && t.predicted_last_ms) q.predictedMs = t.predicted_last_ms;
        if (t.status === 'cancelled') q.predictedMs = null;
        if (judged && t.model && q.what) q.what = Object.assign({}, q.what, { model: t.model });
        const key = q.axisKey;
        if (key !== null && t.wall_ms !== undefined && t.status !== 'cancelled') {
          sticky.set(key, Math.max(sticky.get(key) ?? 0, q.span(Date.now() * 1000)));
        }
      }
      // The next panel of a burst fired one after the other begins now.
      for (const q of Object.values(panels)) if (q.waitingTurn && !m.final) q.waitingTurn = false;
      if (m.final) {
        busy(false);
        const nowUs = Date.now() * 1000;
        for (const q of Object.values(panels)) {
          if (q.burst !== m.burst) continue;
          q.settle(nowUs);
          if (q.result && m.recording) q.result.replay = m.recording;
        }
        const fired = m.twins.filter(t => !t.error), refused = m.twins.filter(t => t.error);
        let what = fired.length === 0 ? `nothing fired: ${refused.map(t => t.error).join('; ')}`
          : fired.some(t => t.status === 'cancelled') ? 'cancelled'
          : fired.every(t => t.status === 'ok') ? 'as predicted' : 'NOT as predicted';
        if (fired.length && refused.length) what += ` (${refused.map(t => title(t.twin)).join(', ')}: not fired)`;
        status(`burst ${m.burst}: ${m.n} × ${m.route} ${what}` + (m.replay ? ' (replayed)' : ''),
               !what.startsWith('as predicted') && what !== 'cancelled');
      }
      if (m.chart) {
        document.querySelector('#chart img').src = m.chart;
        document.getElementById('chart-button').disabled = false;
      }
      break;
    case 'lagged':   // from a twin (its watcher fell behind) or from the stage (this page did)
      for (const q of p ? [p] : Object.values(panels)) q.lagged += m.data.missed;
      break;
    default:
      if (p && m.data && typeof m.data === 'object') p.onEvent(m.type, m.data);
  }
}

function connect() {
  const feed = new EventSource('/feed');
  let lost = false;
  feed.onmessage = e => { for (const m of JSON.parse(e.data)) onMessage(m); };
  feed.onerror = () => {
    lost = true;
    lostAtUs ??= Date.now() * 1000;
    document.body.classList.add('lost');
    dirty = true;
    status('the stage server is not answering; retrying…', true);
  };
  // Back after the stage restarted: start from what it knows now, not from this page's past.
  feed.onopen = () => {
    const n = Object.keys(panels).length;
    if (lost) location.reload(); else if (canFire && !replaying) status(n === 2 ? 'watching both twins' : `watching ${n} servers`);
  };
}

// ---- drawing: one frame per screen refresh ---------------------------------------------------

// How smooth the page stayed: the longest gap between two frames since the last burst began.
const frames = { count: 0, maxGapMs: 0, last: 0 };

// Ask for a frame; frames keep coming only while something moves, so an idle page costs nothing.
function kick() {
  if (!scheduled) { scheduled = true; requestAnimationFrame(frame); }
}

// At most one drawing every DRAW_EVERY_MS: bars move smoothly enough for a room, and the page
// takes half the CPU of drawing at every screen refresh — CPU that /cpu bursts on the same
// machine would otherwise lose to it.
const DRAW_EVERY_MS = 30;
let drawnAt = 0;

function frame(at) {
  scheduled = false;
  if (frames.last) frames.maxGapMs = Math.max(frames.maxGapMs, at - frames.last);
  frames.last = at;
  const all = Object.values(panels);
  const live = all.some(p => p.live);
  if (!dirty && !live) { frames.last = 0; return; }
  // During CPU-bound work the page draws a few times a second: the cores are the experiment's.
  const cpu = all.some(p => p.live && p.what && String(p.what.route).startsWith('/cpu'));
  if (!dirty && at - drawnAt < (cpu ? 150 : DRAW_EVERY_MS)) { kick(); return; }
  drawnAt = at;
  dirty = false;
  frames.count++;
  const nowUs = Date.now() * 1000;
  // One time scale for both panels when they show the same N and route (fired together, or one
  // after the other); it keeps the length of earlier bursts of that N and route. Otherwise each
  // panel has its own, and the page says so.
  const spans = all.map(p => Math.max(1e6, p.span(nowUs), sticky.get(p.axisKey) ?? 0));
  const shown = all.filter(p => p.reqs.size > 0 || p.n > 0);
  const same = shown.length < 2 || shown.every(p => p.key !== null && p.key === shown[0].key);
  all.forEach((p, i) => {
    p.drawnSpanUs = same ? Math.max(...spans) : spans[i];
    p.draw(p.drawnSpanUs, nowUs);
    p.render();
  });
  const drawn = shown.map(p => p.drawnSpanUs);
  const differ = Math.max(...drawn) > Math.min(...drawn) * 1.05;
  // No figures here: an axis ends at its last whole tick, so "0–4.3 s" beside a 4 s axis reads as
  // a contradiction.
  const note = same || !differ ? '' : 'each panel has its own time scale: read each one by its axis';
  setHTML(document.getElementById('scale-note'), esc([notice, note].filter(Boolean).join(' · ')));
  // A gap between frames counts only while frames follow each other, not across idle time.
  if (live) kick(); else frames.last = 0;
}
window.addEventListener('resize', () => { dirty = true; kick(); });
// A verdict that takes another line shrinks the lanes: draw again so labels stay on their lanes.
const resized = new ResizeObserver(() => { dirty = true; kick(); });
for (const el of document.querySelectorAll('.panel')) {
  panels[el.dataset.twin] = new Panel(el, el.dataset.kind || null);
  resized.observe(el.querySelector('.stage-area'));
}
fireWords();

// ---- controls: the stage server fires; the page only asks -----------------------------------

const routesEl = document.getElementById('routes');
ROUTES.forEach((r, i) => {
  const b = document.createElement('button');
  b.dataset.route = r; b.title = `key ${i + 1}`;
  b.setAttribute('role', 'radio');
  b.innerHTML = `${r} <kbd>${i + 1}</kbd>`;
  b.onclick = () => pickRoute(r);
  routesEl.appendChild(b);
});
// A question before a long burst is about that route, N and mode: a change leaves it.
function dropPending() {
  if (pending) { pending = null; showPending(); }
}

function pickRoute(r) {
  dropPending();
  route = r;
  localStorage.setItem('stage.route', r);
  for (const b of routesEl.children) b.setAttribute('aria-checked', String(b.dataset.route === r));
  askPlan();
}

const nEl = document.getElementById('n');
nEl.value = localStorage.getItem('stage.n') ?? DEFAULTS.n;
let nTimer = null;
// A typed N is taken on Enter, Tab, a click elsewhere, or after a moment's quiet — then digits
// pick routes again: "8, then 5" is N = 8 and /cpu, not N = 85.
function commitN() {
  clearTimeout(nTimer);
  if (nEl.value !== (localStorage.getItem('stage.n') ?? DEFAULTS.n)) dropPending();
  const n = Math.round(+nEl.value);
  const kept = localStorage.getItem('stage.n') ?? DEFAULTS.n;
  if (!(n >= 1 && n <= 1000)) status(`N is 1 to 1,000: kept ${kept}`, true);
  else if (String(n) !== kept) status(`N = ${n}`);
  nEl.value = n >= 1 && n <= 1000 ? String(n) : kept;
  localStorage.setItem('stage.n', nEl.value);
  nEl.classList.remove('editing');
  if (document.activeElement === nEl) nEl.blur();
  askPlan();
}
nEl.addEventListener('input', () => {
  nEl.classList.add('editing');
  clearTimeout(nTimer);
  nTimer = setTimeout(commitN, N_COMMIT_MS);
});
nEl.addEventListener('focus', () => nEl.classList.add('editing'));
nEl.addEventListener('blur', () => { if (nEl.classList.contains('editing')) commitN(); });
const PRESETS = [1, 4, 16, 100, 1000];
function stepN(by) {
  const n = +nEl.value || 16;
  const next = by > 0 ? PRESETS.find(p => p > n) : PRESETS.slice().reverse().find(p => p < n);
  nEl.value = next ?? n;
  commitN();
}

// What a press asks for: a burst of N, or (steady mode) λ a second for STEADY_S seconds.
function query(at) {
  return steadyMode ? { route, ms: STEADY_MS, rate: rateEl.value, duration: STEADY_S, at } : { route, n: nEl.value, at };
}

// T: bursts ⇄ steady traffic. The header shows N or λ, and the buttons what each predicts.
const rateEl = document.getElementById('rate');
rateEl.value = localStorage.getItem('stage.rate') ?? DEFAULTS.rate;
function setMode(steady) {
  dropPending();
  steadyMode = steady;
  localStorage.setItem('stage.mode', steady ? 'steady' : 'burst');
  document.body.classList.toggle('steady', steady);
  document.getElementById('mode').setAttribute('aria-pressed', String(steady));
  askPlan();
}
function stepRate(by) {
  dropPending();
  const r = +rateEl.value || 12;
  const next = by > 0 ? RATES.find(p => p > r) : RATES.slice().reverse().find(p => p < r);
  rateEl.value = next ?? r;
  localStorage.setItem('stage.rate', rateEl.value);
  status(`λ = ${rateEl.value} requests a second for ${STEADY_S} s`);
  askPlan();
}
rateEl.addEventListener('change', () => {
  const r = +rateEl.value;
  if (!(r > 0 && r <= 200)) { rateEl.value = localStorage.getItem('stage.rate') ?? DEFAULTS.rate; status('λ is 0.1 to 200 a second', true); }
  localStorage.setItem('stage.rate', rateEl.value);
  rateEl.blur();
  askPlan();
});
document.getElementById('mode').onclick = () => setMode(!steadyMode);

function busy(on) {
  firing = on;
  document.querySelectorAll('[data-at]').forEach(b => { b.disabled = on || !canFire; });
  document.getElementById('stop').disabled = !on || !canFire;
  if (!on) pending = null;
  showPending();
}

// What the model predicts for this route and N: on the buttons, and the question before a long
// burst. Asked of the stage server, which holds each twin's model.
let planAsked = 0;
async function askPlan() {
  const asked = ++planAsked;
  try {
    const res = await fetch(`/plan?${new URLSearchParams(query('all'))}`);
    if (asked !== planAsked) return;
    plan = res.ok ? await res.json() : null;
  } catch (e) { plan = null; }
  for (const at of ['pool', 'event-loop', 'all']) {
    const ms = predictedFor(at);
    document.querySelector(`[data-at="${at}"] .eta`).textContent = ms ? `~${seconds(ms)}` : '';
  }
}

// What the model predicts for a press: the whole press (all), or the longest of the panels of a
// kind (P, A) — the stage fires those together.
function predictedFor(at) {
  if (!plan) return null;
  if (at === 'all') return plan.predicted_ms;
  const each = (plan.twins ?? []).filter(t => panels[t.twin]?.kind === at && t.predicted_ms);
  return each.length ? Math.max(...each.map(t => t.predicted_ms)) : null;
}

function showPending() {
  const el = document.getElementById('confirm');
  el.hidden = !pending;
  if (pending) {
    el.innerHTML = `This burst is predicted to take <b>${esc(seconds(pending.ms))}</b>. ` +
      `Press <kbd>${esc(pending.key)}</kbd> again to fire, <kbd>Esc</kbd> to leave it.`;
  }
}

async function fire(at, key) {
  if (firing) return;
  if (!canFire) return status('watching — only the presenter\'s machine fires', true);
  commitN();
  // The prediction for this route and N, not the one asked for a moment ago.
  const stale = steadyMode ? plan?.rate !== +rateEl.value : plan?.rate !== undefined || plan?.n !== +nEl.value;
  if (!plan || stale || String(plan.route).split('?')[0] !== route) await askPlan();
  const ms = predictedFor(at);
  if (ms > 30000 && !(pending && pending.at === at && Date.now() < pending.until)) {
    pending = { at, key, ms, until: Date.now() + 10000 };
    return showPending();
  }
  pending = null;
  showPending();
  busy(true);
  try {
    const q = new URLSearchParams(query(at));
    const res = await fetch(`/fire?${q}`, { method: 'POST' });
    const body = await res.json();
    if (!res.ok) {
      // The whole reason above the panels (the footer is short), the gist in the footer.
      notice = `not fired — ${body.parameter ? `${body.parameter}: ` : ''}${body.error}` +
               `${body.allowed ? ` (allowed: ${body.allowed})` : ''}${body.detail ? `: ${body.detail}` : ''}`;
      dirty = true;
      kick();
      status(`not fired: ${body.error}`, true);
    }
  } catch (e) {
    status('the stage server is not answering', true);
  } finally {
    busy(false);
  }
}
document.querySelectorAll('[data-at]').forEach(b => {
  b.onclick = () => fire(b.dataset.at, { pool: 'P', 'event-loop': 'A', all: 'B' }[b.dataset.at]);
});

async function stop() {
  if (!firing) return false;
  status('stopping the burst…');
  try {
    const res = await fetch('/cancel', { method: 'POST' });
    if (!res.ok) status((await res.json()).error ?? 'could not stop the burst', true);
  } catch (e) {
    status('the stage server is not answering', true);
  }
  return true;
}
document.getElementById('stop').onclick = stop;

function toggleChart(show) {
  const chart = document.getElementById('chart');
  const none = document.getElementById('chart-button').disabled;
  if (none && show !== false) {
    return status(replaying ? 'no chart in a replay: charts are drawn from bursts fired here' : 'no chart yet: fire a burst first (B)');
  }
  chart.hidden = !(show ?? chart.hidden);
}
document.getElementById('chart-button').onclick = () => toggleChart();

// R: back to a clean page — route /io, N 16, fresh axes, empty panels.
function resetPage() {
  pending = null;
  showPending();
  localStorage.removeItem('stage.route');
  localStorage.removeItem('stage.n');
  localStorage.removeItem('stage.rate');
  nEl.value = DEFAULTS.n;
  rateEl.value = DEFAULTS.rate;
  setMode(false);
  commitN();
  pickRoute(DEFAULTS.route);
  sticky.clear();
  release.clear();
  toggleChart(false);
  // Fresh: no chart of the bursts before (C says so until the next burst).
  document.querySelector('#chart img').removeAttribute('src');
  document.getElementById('chart-button').disabled = true;
  if (!firing) for (const p of Object.values(panels)) p.reset(null, null, 0);
  dirty = true;
  status('reset: bursts, /io, N = 16, fresh axes');
}

// S: both panels as one PNG, for a slide: the burst, each panel's counters, lanes and verdict.
function savePicture() {
  const all = Object.values(panels), dpr = window.devicePixelRatio || 1;
  const pad = 12, head = 96, lineH = 20;
  const panelW = Math.max(...all.map(p => p.canvas.width / dpr));
  const panelH = Math.max(...all.map(p => p.canvas.height / dpr));
  const measure = document.createElement('canvas').getContext('2d');
  measure.font = '15px system-ui, sans-serif';
  const wrapped = all.map(p => wrapText(measure, p.el.querySelector('.verdict').innerText, panelW - 8));
  const foot = Math.max(...wrapped.map(w => w.length)) * lineH + 16;
  // Side by side; four in two rows of two, as on the page.
  const cols = all.length > 2 ? 2 : all.length, rows = Math.ceil(all.length / cols);
  const rowH = head + panelH + foot;
  const out = document.createElement('canvas');
  out.width = Math.round((panelW * cols + pad * (cols + 1)) * dpr);
  out.height = Math.round(rowH * rows * dpr);
  const g = out.getContext('2d');
  g.scale(dpr, dpr);
  g.fillStyle = '#fff'; g.fillRect(0, 0, out.width, out.height);
  g.fillStyle = '#111';
  g.font = '600 18px system-ui, sans-serif';
  g.fillText('twins · live stage', pad, 22);
  all.forEach((p, i) => {
    const x = pad + (i % cols) * (panelW + pad);
    g.save();
    g.translate(0, Math.floor(i / cols) * rowH);
    g.fillStyle = '#111';
    g.font = '600 22px system-ui, sans-serif';
    // The panel's name, then what it watches, within the panel's width.
    g.fillText(title(p.twin), x, 52, panelW);
    const nameW = Math.min(g.measureText(title(p.twin)).width + 10, panelW);
    g.font = '14px system-ui, sans-serif';
    g.fillStyle = '#555';
    if (panelW - nameW > 40) g.fillText(p.subtitle, x + nameW, 52, panelW - nameW);
    g.fillStyle = '#111';
    g.font = '16px system-ui, sans-serif';
    // A burst from elsewhere is counted by what the page saw of it (the stage did not fire it).
    const burst = !p.what ? '' : p.steady ? ` — ${p.steady.rate}/s × ${seconds(p.steady.durationMs)} of ${p.what.route}`
      : ` — ${p.what.elsewhere ? p.reqs.size : p.n} × ${p.what.route}`;
    g.fillText(p.el.querySelector('.counter').innerText + burst, x, 76);
    g.drawImage(p.canvas, x, head, p.canvas.width / dpr, p.canvas.height / dpr);
    const laneH = (p.canvas.height / dpr - QUEUE_H - AXIS_H) / p.workers;
    g.font = '600 15px system-ui, sans-serif';
    for (let k = 0; k < p.workers; k++) g.fillText(`worker${k}`, x + 4, head + QUEUE_H + k * laneH + 20);
    g.font = '15px system-ui, sans-serif';
    g.fillStyle = p.result?.status === 'ok' ? '#2e7d32' : p.result?.status === 'cancelled' ? '#555' : '#c62828';
    wrapped[i].forEach((line, k) => g.fillText(line, x, head + panelH + 20 + k * lineH));
    g.restore();
  });
  const link = document.createElement('a');
  link.download = `stage-${new Date().toISOString().replace(/[:.]/g, '-')}.png`;
  link.href = out.toDataURL('image/png');
  link.click();
  status(`saved the panels as ${link.download}, in this browser's downloads folder`);
}

// Words in lines no wider than `width` px in the font `g` is set to.
function wrapText(g, text, width) {
  const lines = [];
  let line = '';
  for (const word of text.split(/\s+/).filter(Boolean)) {
    const longer = line ? `${line} ${word}` : word;
    if (line && g.measureText(longer).width > width) { lines.push(line); line = word; }
    else line = longer;
  }
  if (line) lines.push(line);
  return lines;
}

document.addEventListener('keydown', e => {
  if (e.altKey || e.ctrlKey || e.metaKey) return;
  // Typing a number of requests: digits, arrows and editing keys are the field's; Enter takes it
  // (without firing), Esc leaves it.
  if (e.target === rateEl) {
    if (/^([0-9.]|Arrow(Left|Right)|Backspace|Delete|Home|End)$/.test(e.key)) return;
    if (e.key === 'Enter' || e.key === 'Escape' || e.key === 'Tab') { rateEl.blur(); e.preventDefault(); return; }
  }
  if (e.target === nEl) {
    if (/^([0-9]|Arrow(Left|Right)|Backspace|Delete|Home|End)$/.test(e.key)) return;
    if (e.key === 'Enter' || e.key === 'Escape' || e.key === 'Tab') {
      commitN();
      e.preventDefault();
      return;
    }
    commitN();
  }
  dirty = true;
  kick();
  const k = e.key.toLowerCase();
  if (k >= '1' && k <= String(ROUTES.length)) pickRoute(ROUTES[+k - 1]);
  else if (k === 'p') fire('pool', 'P');
  else if (k === 'a') fire('event-loop', 'A');
  // A presenter's clicker sends PageDown / → / Space: each fires both.
  else if (['b', ' ', 'enter', 'pagedown', 'arrowright'].includes(k)) fire('all', e.key === ' ' ? 'Space' : 'B');
  else if (k === 'arrowup') steadyMode ? stepRate(1) : stepN(1);
  else if (k === 'arrowdown') steadyMode ? stepRate(-1) : stepN(-1);
  else if (k === 't') { if (!firing) setMode(!steadyMode); }
  else if (k === 'c') toggleChart();
  else if (k === 's') savePicture();
  else if (k === 'r') resetPage();
  else if (k === 'escape') {
    if (pending) { pending = null; showPending(); status('left it: nothing fired'); }
    else if (!document.getElementById('chart').hidden) toggleChart(false);
    else stop();
  } else return;
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
  n: () => nEl.value,
  mode: () => (steadyMode ? 'steady' : 'burst'),
  rate: () => rateEl.value,
  route: () => route,
  plan: () => plan,
  scaleNote: () => document.getElementById('scale-note').textContent,
};

setMode(steadyMode);
pickRoute(route);
connect();
kick();
