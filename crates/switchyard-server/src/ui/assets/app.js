/*
 * switchyard dashboard: app.js
 *
 * Draws the JSON of GET /admin/stats (docs/admin-stats.md) into the skeleton of index.html. Plain ES2020,
 * no libraries, charts are hand-made inline SVG. Two modes:
 *   - live (/ui): fetches /admin/stats with the range/reference controls; 401/403 sends the browser to /ui
 *     (the login page);
 *   - report (`switchyard logs report`): the data is inlined as a JSON script element with id "data",
 *     and the re-fetching controls are hidden.
 * Every value from the log goes into the page through textContent or attributes, never as HTML.
 * Test hooks: every number carries its raw JSON value in data-value; table cells carry data-field;
 * body[data-state] is "loading", then "ready" or "error".
 */
'use strict';
(() => {
  // ---------------------------------------------------------------- DOM helpers

  const SVG_NS = 'http://www.w3.org/2000/svg';

  function build(node, attrs, children) {
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v == null || v === false) continue;
      if (k.startsWith('on') && typeof v === 'function') node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat(Infinity)) {
      if (c == null || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }
  /** el('td', {'data-field': 'x'}, 'text', childNode, ...): an HTML element. */
  const el = (tag, attrs, ...children) => build(document.createElement(tag), attrs, children);
  /** svg('rect', {x: 0, ...}): an SVG element. */
  const svg = (tag, attrs, ...children) => build(document.createElementNS(SVG_NS, tag), attrs, children);
  const $ = (id) => document.getElementById(id);
  const clear = (node) => { node.replaceChildren(); return node; };
  const setState = (s) => { document.body.dataset.state = s; };

  // ---------------------------------------------------------------- formatting

  const DASH = '–';
  const isNum = (v) => typeof v === 'number' && Number.isFinite(v);
  const nf = new Intl.NumberFormat('en-US');
  const nf2 = new Intl.NumberFormat('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 });

  const fmt = {
    count: (v) => nf.format(v),
    int: (v) => String(v),
    usd(v) {
      const a = Math.abs(v), sign = v < 0 ? '-' : '';
      if (a === 0) return '$0.00';
      if (a >= 1) return sign + '$' + nf2.format(a);
      let s = a.toPrecision(4);
      if (s.includes('e')) s = a.toFixed(10);
      s = s.replace(/0+$/, '');
      if (s.split('.')[1].length < 2) s = a.toFixed(2);
      return sign + '$' + s;
    },
    /** An axis tick in USD, with as many decimals as the tick step needs. */
    usdTick(v, step) {
      if (step >= 1000) return '$' + nf.format(v / 1000) + 'k';
      if (step >= 1) return '$' + nf.format(v);
      return '$' + v.toFixed(Math.min(8, Math.max(2, (String(step).split('.')[1] || '').length)));
    },
    countShort(v) {
      if (Math.abs(v) >= 1e6) return (v / 1e6).toFixed(1).replace(/\.0$/, '') + 'M';
      if (Math.abs(v) >= 1e3) return (v / 1e3).toFixed(1).replace(/\.0$/, '') + 'k';
      return String(Math.round(v * 100) / 100);
    },
    pct: (v) => (v * 100).toFixed(1) + '%',
    score: (v) => v.toFixed(2),
    signed: (v) => { const r = Math.round(v * 100) / 100; return (r > 0 ? '+' : r < 0 ? '−' : '±') + Math.abs(r).toFixed(2); },
    ms: (v) => (v >= 1000 ? (v / 1000).toFixed(2) + ' s' : Math.round(v) + ' ms'),
    tokens: (v) => fmt.countShort(v),
  };
  /** "0.72 (0.65–0.79)" for feedback, "4.0% (1.2–9.8%)" for rates. */
  function fmtInterval(iv, rate) {
    if (!iv || !isNum(iv.mean)) return DASH;
    const f = rate ? (v) => (v * 100).toFixed(1) : fmt.score;
    return `${rate ? fmt.pct(iv.mean) : f(iv.mean)} (${f(iv.low)}–${f(iv.high)}${rate ? '%' : ''})`;
  }
  // Local time, in the browser's locale (formatters made once: making one per value is slow).
  const dtf = (o) => { const f = new Intl.DateTimeFormat(undefined, o); return (ms) => f.format(new Date(ms)); };
  const fmtTime = dtf({ month: 'short', day: 'numeric', hour: 'numeric', minute: '2-digit', second: '2-digit' });
  const fmtDateTime = dtf({ year: 'numeric', month: 'short', day: 'numeric', hour: 'numeric', minute: '2-digit' });
  const fmtDay = dtf({ month: 'short', day: 'numeric' });
  const fmtHour = dtf({ hour: 'numeric', minute: '2-digit' });
  const DAY = 86400000;
  const localMs = (ms) => ms - new Date(ms).getTimezoneOffset() * 60000;
  /** A time-axis label: the date at local midnight (or for steps of days), else the time of day. */
  function fmtTick(ms, step) {
    return step >= DAY || localMs(ms) % DAY === 0 ? fmtDay(ms) : fmtHour(ms);
  }
  /** Indexes of the buckets to label: those on a round local time, as many as fit in px pixels. */
  function timeTicks(buckets, bucketMs, px) {
    const n = buckets.length, most = Math.max(2, Math.floor(px / 78));
    const span = n * bucketMs;
    const steps = [6e4, 12e4, 3e5, 6e5, 9e5, 18e5, 36e5, 72e5, 108e5, 216e5, 432e5, DAY, 2 * DAY, 7 * DAY, 14 * DAY];
    const step = steps.find((s) => s >= bucketMs && span / s <= most);
    let idx = step ? buckets.map((b, i) => (localMs(b) % step === 0 ? i : -1)).filter((i) => i >= 0) : [];
    if (idx.length < 2) { // odd bucket widths: every k-th bucket
      const k = Math.max(1, Math.ceil(n / most));
      idx = buckets.map((_, i) => i).filter((i) => i % k === 0);
    }
    return { idx, step: step || bucketMs };
  }
  /** A label cut to about px pixels of 12px text. */
  const fitLabel = (s, px) => { const n = Math.max(4, Math.floor(px / 6.6)); return s.length > n ? s.slice(0, n - 1) + '…' : s; };
  const fmtBucket = (ms) => (ms % 86400000 === 0 ? ms / 86400000 + 'd' : ms % 3600000 === 0 ? ms / 3600000 + 'h'
    : ms % 60000 === 0 ? ms / 60000 + 'm' : ms / 1000 + 's');

  /** A number as a display node: a span with data-value and formatted text, "–" without data-value for null. */
  function num(v, f, attrs) {
    return isNum(v) ? el('span', { ...attrs, 'data-value': v }, f(v)) : el('span', attrs, DASH);
  }

  // ---------------------------------------------------------------- colours

  const PALETTE = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f',
    '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#8c8c8c'];
  const BANDS = [['low', '#fdd0a2'], ['mid', '#fd8d3c'], ['high', '#a63603']];
  let colours = new Map();

  function hash(s) { // FNV-1a
    let h = 0x811c9dc5;
    for (let i = 0; i < s.length; i++) { h ^= s.charCodeAt(i); h = Math.imul(h, 0x01000193); }
    return h >>> 0;
  }
  /** Each model's colour is its hashed palette slot; models sharing a slot (in name order) take the next free one. */
  function assignColours(names) {
    colours = new Map();
    const used = new Set();
    for (const n of [...new Set(names)].filter((n) => n != null).sort()) {
      let i = hash(n) % PALETTE.length;
      for (let k = 0; k < PALETTE.length && used.has(i); k++) i = (i + 1) % PALETTE.length;
      used.add(i);
      colours.set(n, PALETTE[i]);
    }
  }
  const colour = (m) => colours.get(m) || PALETTE[hash(String(m)) % PALETTE.length];
  const swatch = (c) => svg('svg', { width: 10, height: 10, class: 'swatch', 'aria-hidden': 'true' },
    svg('rect', { width: 10, height: 10, rx: 2, fill: c }));
  function legend(box, items) {
    clear(box).append(...items.map(([label, c]) => el('span', { class: 'legend-item' }, swatch(c), label)));
  }

  // ---------------------------------------------------------------- tables

  /**
   * Column: {label, field, get: row => raw, show?: (raw, row) => text, num?: bool, extra?: row => node, title?}.
   * A cell is <td data-field data-value>; null raw values show "–" and carry no data-value.
   */
  const col = (label, field, get, show, opts) => ({ label, field, get, show, num: true, ...opts });
  const text = (label, field, get, opts) => ({ label, field, get, show: (v) => String(v), num: false, ...opts });

  function cell(c, row) {
    const raw = c.get(row);
    const ok = c.num ? isNum(raw) : raw != null && raw !== '';
    const td = el('td', { 'data-field': c.field, 'data-value': ok ? raw : null, class: c.num ? 'num' : null },
      ok ? c.show(raw, row) : DASH);
    if (c.title) { const t = c.title(row); if (t) td.title = t; }
    if (c.cls) { const k = c.cls(row); if (k) td.classList.add(k); }
    if (c.extra) { const x = c.extra(row); if (x) td.append(x); }
    return td;
  }

  function fillTable(table, columns, rows, rowAttrs) {
    const head = el('thead', null, el('tr', null, columns.map((c) =>
      el('th', { class: c.num ? 'num' : null, title: c.help, scope: 'col' }, c.label))));
    const body = el('tbody');
    if (!rows || !rows.length) {
      body.append(el('tr', { class: 'empty' }, el('td', { colspan: columns.length }, 'No data in this range')));
    }
    for (const r of rows || []) body.append(el('tr', rowAttrs ? rowAttrs(r) : null, columns.map((c) => cell(c, r))));
    clear(table).append(head, body);
    return body;
  }

  /** A small usage bar (used of limit) for a table cell. */
  function usageBar(used, limit, fill) {
    if (!isNum(used) || !isNum(limit) || limit <= 0) return null;
    const f = Math.min(1, Math.max(0, used / limit)), w = 56;
    const c = fill || (f >= 0.9 ? '#d6404e' : f >= 0.7 ? '#e3a21a' : '#3e9b5d');
    return svg('svg', { class: 'usage', width: w, height: 6, 'aria-hidden': 'true' },
      svg('rect', { width: w, height: 6, rx: 3, fill: '#e6e9ee' }),
      svg('rect', { width: Math.max(f * w, f > 0 ? 2 : 0), height: 6, rx: 3, fill: c }));
  }
  const modelLabel = (m) => el('span', { class: 'model' }, swatch(colour(m)), m);

  // ---------------------------------------------------------------- charts

  function niceStep(raw) {
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    const f = raw / p;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10) * p;
  }
  /** Ticks 0..≥max, about n of them. */
  function ticks(max, n, integer) {
    if (!(max > 0)) return [0, 1];
    let step = niceStep(max / n);
    if (integer) step = Math.max(1, Math.ceil(step));
    const out = [];
    for (let v = 0; v < max + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
    if (out[out.length - 1] < max) out.push(Number((out[out.length - 1] + step).toPrecision(12)));
    return out;
  }
  /** An <svg> as wide as its box. */
  function frame(box, height) {
    const width = Math.max(300, Math.floor(box.clientWidth || 600));
    const root = svg('svg', { width, height, viewBox: `0 0 ${width} ${height}`, class: 'chart-svg', role: 'img' });
    clear(box).append(root);
    return { root, width, height };
  }
  function emptyChart(box, msg) {
    clear(box).append(el('div', { class: 'chart-empty' }, msg || 'No data in this range'));
  }
  const line = (x1, y1, x2, y2, cls) => svg('line', { x1, y1, x2, y2, class: cls });
  const label = (x, y, s, attrs, ...more) => svg('text', { x, y, ...attrs }, s, ...more);

  /** Stacked bars over the range's buckets, one colour per model (series[key]). */
  function timeChart(box, data, key, tickFmt, valFmt, integer) {
    const buckets = data.range.buckets || [];
    const series = (data.series || []).filter((s) => (s[key] || []).some((v) => v > 0));
    if (!buckets.length || !series.length) return emptyChart(box);
    const n = buckets.length;
    const totals = buckets.map((_, i) => series.reduce((a, s) => a + (s[key][i] || 0), 0));
    const yt = ticks(Math.max(...totals), 4, integer);
    const ymax = yt[yt.length - 1], step = yt[1] - yt[0];
    const { root, width, height } = frame(box, 220);
    const m = { l: 48, r: 8, t: 8, b: 24 };
    const pw = width - m.l - m.r, ph = height - m.t - m.b;
    const y = (v) => m.t + ph - (v / ymax) * ph;
    for (const t of yt) {
      root.append(line(m.l, y(t), width - m.r, y(t), t === 0 ? 'axis' : 'grid'),
        label(m.l - 6, y(t) + 4, tickFmt(t, step), { class: 'tick', 'text-anchor': 'end' }));
    }
    const bw = pw / n, gap = bw > 4 ? Math.min(2, bw * 0.15) : 0;
    // One path per model (its bars, stacked on the models before it), then a transparent hover
    // rectangle per bucket that carries the bucket's tooltip: few nodes even with 2,000 buckets.
    const r2 = (v) => Math.round(v * 100) / 100, bwi = r2(Math.max(bw - gap, 0.5));
    const acc = new Array(n).fill(0);
    for (const s of series) {
      let d = '';
      for (let i = 0; i < n; i++) {
        const v = s[key][i] || 0;
        if (v <= 0) continue;
        const top = y(acc[i] + v), bottom = y(acc[i]);
        d += `M${r2(m.l + i * bw + gap / 2)} ${r2(top)}h${bwi}V${r2(Math.max(bottom, top + 0.5))}h${-bwi}Z`;
        acc[i] += v;
      }
      root.append(svg('path', { d, fill: colour(s.model) }));
    }
    buckets.forEach((b, i) => {
      const lines = [`${fmtTime(b)} · total ${valFmt(totals[i])}`];
      for (const s of series) if (s[key][i] > 0) lines.push(`${s.model}: ${valFmt(s[key][i])}`);
      root.append(svg('rect', { x: r2(m.l + i * bw), y: m.t, width: r2(bw), height: ph, class: 'hover' },
        svg('title', null, lines.join('\n'))));
    });
    const tt = timeTicks(buckets, data.range.bucket_ms, pw);
    for (const i of tt.idx) {
      const x = m.l + i * bw;
      root.append(line(x, m.t + ph, x, m.t + ph + 4, 'axis'),
        label(Math.max(x, m.l - 14), height - 6, fmtTick(buckets[i], tt.step), { class: 'tick', 'text-anchor': 'middle' }));
    }
  }

  /**
   * Horizontal interval chart: rows [{label, colour, iv, predicted?, sub?}]; a dot at iv.mean with a bar
   * low..high, and an open diamond at predicted. Sub rows (a model's domains) are smaller and indented.
   */
  function intervalChart(box, rows, opts) {
    rows = rows.filter((r) => r.iv || isNum(r.predicted));
    if (!rows.length) return emptyChart(box, opts.empty);
    const rhOf = (r) => (r.sub ? 22 : 30);
    const m = { l: Math.min(200, 24 + 7 * Math.max(...rows.map((r) => r.label.length))), r: 16, t: 8, b: 26 };
    const { root, width, height } = frame(box, m.t + m.b + rows.reduce((a, r) => a + rhOf(r), 0));
    const vals = rows.flatMap((r) => [r.iv && r.iv.low, r.iv && r.iv.high, r.predicted]).filter(isNum);
    // Zoom on the data, staying within 0..1 when the data does; ticks on a nice step.
    const mn = Math.min(...vals), mx = Math.max(...vals), pad = Math.max(0.05, (mx - mn) * 0.1);
    let lo = mn >= 0 ? Math.max(0, mn - pad) : mn - pad, hi = mx <= 1 ? Math.min(1, mx + pad) : mx + pad;
    const step = niceStep(Math.max(hi - lo, 0.1) / 5);
    lo = Math.floor(lo / step + 1e-9) * step; hi = Math.ceil(hi / step - 1e-9) * step;
    if (hi <= lo) hi = lo + step;
    const pw = width - m.l - m.r;
    const x = (v) => m.l + ((v - lo) / (hi - lo)) * pw;
    for (let v = lo, i = 0; v <= hi + step * 1e-6; v += step, i++) {
      root.append(line(x(v), m.t, x(v), height - m.b, i === 0 ? 'axis' : 'grid'),
        label(x(v), height - 8, fmt.score(v), { class: 'tick', 'text-anchor': 'middle' }));
    }
    let top = m.t;
    rows.forEach((r) => {
      const rh = rhOf(r), cy = top + rh / 2, k = r.sub ? 0.75 : 1;
      top += rh;
      const g = svg('g', { class: 'row' }, svg('title', null, [r.label,
        r.iv ? `${opts.what}: ${fmtInterval(r.iv)} over ${fmt.count(r.iv.n)}` : `${opts.what}: none`,
        isNum(r.predicted) ? `predicted: ${fmt.score(r.predicted)}` : null].filter(Boolean).join('\n')));
      g.append(svg('rect', { x: 0, y: cy - rh / 2, width, height: rh, class: 'hover' }),
        label(m.l - 8, cy + 4, fitLabel(r.label, m.l - (r.sub ? 28 : 12)), { class: r.sub ? 'row-label sub' : 'row-label', 'text-anchor': 'end' }));
      if (r.iv) {
        const a = x(r.iv.low), b = x(r.iv.high), e = 5 * k;
        g.append(line(a, cy, b, cy, r.sub ? 'err sub' : 'err'), line(a, cy - e, a, cy + e, 'err'), line(b, cy - e, b, cy + e, 'err'),
          svg('circle', { cx: x(r.iv.mean), cy, r: 5 * k, fill: r.colour, class: 'dot' }));
      }
      if (isNum(r.predicted)) {
        const px = x(r.predicted), d = 6 * k;
        g.append(svg('path', { d: `M${px} ${cy - d}L${px + d} ${cy}L${px} ${cy + d}L${px - d} ${cy}Z`, class: 'pred' }));
      }
      root.append(g);
    });
  }

  // ---------------------------------------------------------------- panels

  function renderHeader(data, report) {
    const r = data.range;
    $('range-label').textContent = `${fmtDateTime(r.from_ms)} – ${fmtDateTime(r.to_ms)} · ${fmtBucket(r.bucket_ms)} buckets`;
    const gen = $('generated');
    gen.textContent = (report ? 'Report generated ' : 'Generated ') + fmtDateTime(data.generated_ms);
    gen.dataset.value = data.generated_ms;
    gen.title = `read and summed in ${isNum(data.query_ms) ? data.query_ms.toFixed(1) : '?'} ms`;
    $('backend').textContent = `${data.log.backend} · prompts: ${data.log.prompts}`;
    const sel = clear($('reference'));
    const ref = data.savings.reference && data.savings.reference.model;
    const names = [...data.savings.candidates];
    if (ref && !names.includes(ref)) names.unshift(ref);
    for (const n of names) sel.append(el('option', { value: n, selected: n === ref }, n));
    sel.disabled = !names.length;
    if (!names.length) sel.append(el('option', { value: '' }, 'no priced models'));
  }

  function kpi(id, title, value, shown, sub) {
    return el('div', { class: 'kpi' }, el('div', { class: 'kpi-label' }, title),
      el('div', { class: 'kpi-value', id, 'data-value': value == null ? null : value }, value == null ? DASH : shown),
      el('div', { class: 'kpi-sub' }, sub || ''));
  }
  const n0 = (v) => (isNum(v) ? v : null);

  function renderKpis(data) {
    const t = data.totals, s = data.savings, c = data.cache, ref = s.reference;
    const fb = t.feedback && isNum(t.feedback.mean) ? t.feedback : null;
    const hr = c.hit_rate && isNum(c.hit_rate.mean) ? c.hit_rate : null;
    const usd = (v) => (isNum(v) ? fmt.usd(v) : '');
    clear($('kpis')).append(
      kpi('kpi-requests', 'Requests', n0(t.requests), fmt.count(t.requests),
        [num(t.routed, fmt.count), ' routed · ', num(t.gateway, fmt.count), ' via gateway']),
      kpi('kpi-spend', 'Spend', n0(t.spend_usd), usd(t.spend_usd),
        [num(t.input_tokens, fmt.tokens), ' in · ', num(t.output_tokens, fmt.tokens), ' out tokens']),
      kpi('kpi-saved', 'Saved', n0(s.saved_usd), usd(s.saved_usd), ref ? `vs. all on ${ref.model}` : 'no reference model'),
      kpi('kpi-saved-share', 'Saved share', n0(s.saved_share), isNum(s.saved_share) ? fmt.pct(s.saved_share) : '',
        'of the reference spend'),
      kpi('kpi-reference-usd', 'At reference prices', n0(s.reference_usd), usd(s.reference_usd),
        [num(s.priced_requests, fmt.count), ' priced · ', num(s.unpriced_requests, fmt.count), ' unpriced']),
      kpi('kpi-reference-model', 'Reference model', ref ? ref.model : null, ref ? ref.model : '',
        ref ? [num(ref.input_usd_per_mtok, fmt.usd), ' / ', num(ref.output_usd_per_mtok, fmt.usd),
          ` per Mtok · ${ref.picked === 'request' ? 'chosen' : 'dearest used'}`] : ''),
      kpi('kpi-feedback', 'Feedback', fb ? fb.mean : null, fmtInterval(fb), [num(t.scored, fmt.count), ' scored requests']),
      kpi('kpi-cache-hits', 'Cache hits', n0(c.hits), fmt.count(c.hits || 0),
        hr ? [num(hr.mean, fmt.pct), ' of gateway requests'] : 'no gateway requests'),
      kpi('kpi-cache-saved', 'Saved by cache', n0(c.saved_usd), usd(c.saved_usd), 'model calls not made'),
      kpi('kpi-errors', 'Errors', n0(t.errors), fmt.count(t.errors || 0),
        t.requests > 0 ? [num(t.errors / t.requests, fmt.pct), ' of requests (status ≥ 400)'] : 'status ≥ 400'),
    );
    $('kpi-errors').classList.toggle('bad', t.errors > 0);
    $('kpi-saved').classList.toggle('good', s.saved_usd > 0);
  }

  function renderTime(data) {
    timeChart($('chart-requests'), data, 'requests', fmt.countShort, fmt.count, true);
    timeChart($('chart-spend'), data, 'spend_usd', fmt.usdTick, fmt.usd, false);
    legend($('legend-models'), (data.series || []).map((s) => [s.model, colour(s.model)]));
    fillTable($('models'), [
      text('Model', 'model', (r) => r.model, { show: (v) => modelLabel(v) }),
      col('Requests', 'requests', (r) => r.requests, fmt.count),
      col('Errors', 'errors', (r) => r.errors, fmt.count, { cls: (r) => (r.errors > 0 ? 'bad' : null) }),
      col('Spend', 'spend_usd', (r) => r.spend_usd, fmt.usd),
      col('In tokens', 'input_tokens', (r) => r.input_tokens, fmt.count),
      col('Out tokens', 'output_tokens', (r) => r.output_tokens, fmt.count),
      col('Fallbacks', 'fallbacks', (r) => r.fallbacks, fmt.count, { help: 'answered after more than one attempt' }),
      col('Latency', 'latency_ms', (r) => r.latency_ms, fmt.ms, { help: 'mean end-to-end latency' }),
      col('Scored', 'scored', (r) => r.scored, fmt.count),
      col('Feedback', 'feedback', (r) => r.feedback && r.feedback.mean, (v, r) => fmtInterval(r.feedback), { help: 'mean and 95% interval' }),
      col('Predicted', 'predicted', (r) => r.predicted, fmt.score, { help: 'mean predicted P of success over the scored requests' }),
    ], data.models, (r) => ({ 'data-model': r.model }));
  }

  function renderSavings(data) {
    const s = data.savings, ref = s.reference;
    $('savings-reference').textContent = ref ? ref.model : 'a reference model (none: no priced model in this range)';
    fillTable($('savings'), [
      text('Model', 'model', (r) => r.model, { show: (v) => modelLabel(v) }),
      col('Requests', 'requests', (r) => r.requests, fmt.count),
      col('Spend', 'spend_usd', (r) => r.spend_usd, fmt.usd),
      col('At reference', 'reference_usd', (r) => r.reference_usd, fmt.usd),
      col('Saved', 'saved_usd', (r) => r.saved_usd, fmt.usd, { cls: (r) => (r.saved_usd < -1e-9 ? 'bad' : r.saved_usd > 1e-9 ? 'good' : null) }),
    ], s.by_model, (r) => ({ 'data-model': r.model }));
    const facts = clear($('savings-facts'));
    if (ref) {
      facts.append(`${ref.model}: `, num(ref.input_usd_per_mtok, fmt.usd), ' in / ', num(ref.output_usd_per_mtok, fmt.usd),
        ` out per million tokens (${ref.picked === 'request' ? 'chosen here' : 'the dearest model used'}). `,
        num(s.priced_requests, fmt.count), ' priced requests; ', num(s.unpriced_requests, fmt.count),
        ' not priced (route-only, cache hits, errors without usage).');
    }
    // The chart: actual spend (stacked by model) against the same requests at the reference's prices.
    const box = $('chart-savings');
    if (!ref || !(s.reference_usd > 0 || s.spend_usd > 0)) return emptyChart(box, 'No priced requests in this range');
    const { root, width } = frame(box, 150);
    const m = { l: 120, r: 16 }, pw = width - m.l - m.r;
    const xt = ticks(Math.max(s.reference_usd, s.spend_usd), 4);
    const xmax = xt[xt.length - 1], step = xt[1] - xt[0];
    const x = (v) => m.l + (v / xmax) * pw;
    for (const t of xt) root.append(line(x(t), 8, x(t), 112, t === 0 ? 'axis' : 'grid'),
      label(x(t), 128, fmt.usdTick(t, step), { class: 'tick', 'text-anchor': 'middle' }));
    root.append(label(m.l - 8, 38, 'Actual spend', { class: 'row-label', 'text-anchor': 'end' }),
      label(m.l - 8, 88, 'At reference', { class: 'row-label', 'text-anchor': 'end' }));
    let acc = 0;
    for (const b of s.by_model) {
      if (!(b.spend_usd > 0)) continue;
      root.append(svg('rect', { x: x(acc), y: 20, width: Math.max(x(acc + b.spend_usd) - x(acc), 1), height: 28, fill: colour(b.model) },
        svg('title', null, `${b.model}: ${fmt.usd(b.spend_usd)}`)));
      acc += b.spend_usd;
    }
    root.append(svg('rect', { x: m.l, y: 70, width: Math.max(x(s.reference_usd) - m.l, 1), height: 28, class: 'ref-bar' },
      svg('title', null, `${ref.model} prices: ${fmt.usd(s.reference_usd)}`)));
    const tx = Math.min(x(acc) + 8, width - m.r - 4), fits = x(acc) + 180 < width;
    root.append(label(fits ? tx : x(acc) - 8, 38, `${fmt.usd(s.spend_usd)} · saved ${fmt.usd(s.saved_usd)}` +
      (isNum(s.saved_share) ? ` (${fmt.pct(s.saved_share)})` : ''), { class: 'bar-label', 'text-anchor': fits ? 'start' : 'end' }),
    label(Math.max(x(s.reference_usd) - 8, m.l + 60), 88, fmt.usd(s.reference_usd), { class: 'bar-label inv', 'text-anchor': 'end' }));
  }

  function renderQuality(data) {
    // A row per model, then one per domain of that model.
    const ivOf = (r) => (r.feedback && isNum(r.feedback.mean) ? r.feedback : null);
    const rows = (data.models || []).flatMap((r) => [
      { label: r.model, colour: colour(r.model), iv: ivOf(r), predicted: r.predicted },
      ...(data.quality || []).filter((q) => q.model === r.model)
        .map((q) => ({ label: q.domain ?? '(none)', colour: colour(r.model), iv: ivOf(q), predicted: q.predicted, sub: true })),
    ]);
    intervalChart($('chart-quality'), rows, { what: 'observed', empty: 'No scored requests in this range' });
    const chart = $('chart-quality');
    if (chart.querySelector('svg')) {
      chart.append(el('div', { class: 'legend' },
        el('span', { class: 'legend-item' }, el('span', { class: 'key-dot' }), 'observed feedback, 95% interval'),
        el('span', { class: 'legend-item' }, el('span', { class: 'key-diamond' }), 'predicted P of success')));
    }
    const gap = (r) => (r.feedback && isNum(r.feedback.mean) && isNum(r.predicted) ? r.feedback.mean - r.predicted : null);
    fillTable($('quality'), [
      text('Model', 'model', (r) => r.model, { show: (v) => modelLabel(v) }),
      text('Domain', 'domain', (r) => r.domain),
      col('Requests', 'requests', (r) => r.requests, fmt.count),
      col('Scored', 'scored', (r) => r.scored, fmt.count),
      col('Feedback', 'feedback', (r) => r.feedback && r.feedback.mean, (v, r) => fmtInterval(r.feedback)),
      col('Predicted', 'predicted', (r) => r.predicted, fmt.score),
      col('Gap', 'gap', gap, fmt.signed, { help: 'observed − predicted', cls: (r) => (gap(r) <= -0.1 ? 'bad' : null) }),
    ], data.quality, (r) => ({ 'data-model': r.model, 'data-domain': r.domain ?? '' }));
  }

  function renderTraffic(data) {
    const rows = data.traffic || [];
    fillTable($('traffic'), [
      text('Model', 'model', (r) => r.model, { show: (v) => modelLabel(v) }),
      text('Domain', 'domain', (r) => r.domain),
      text('Complexity', 'band', (r) => r.band, { show: (v) => el('span', { class: 'band band-' + v }, v) }),
      col('Requests', 'requests', (r) => r.requests, fmt.count),
    ], rows, (r) => ({ 'data-model': r.model, 'data-domain': r.domain ?? '', 'data-band': r.band }));
    legend($('legend-bands'), rows.length ? BANDS.map(([b, c]) => [b + ' complexity', c]) : []);
    const box = $('chart-traffic');
    if (!rows.length) return emptyChart(box);
    // Grid: a row per model, a column per domain; cell shade = requests, bottom strip = split by band.
    const order = (key) => {
      const sum = new Map();
      for (const r of rows) sum.set(r[key] ?? '', (sum.get(r[key] ?? '') || 0) + r.requests);
      return [...sum.entries()].sort((a, b) => b[1] - a[1] || String(a[0]).localeCompare(b[0])).map((e) => e[0]);
    };
    const models = order('model'), domains = order('domain');
    const cells = new Map();
    for (const r of rows) {
      const k = `${r.model}\u0000${r.domain ?? ''}`;
      const c = cells.get(k) || { total: 0, low: 0, mid: 0, high: 0 };
      c.total += r.requests; c[r.band] = (c[r.band] || 0) + r.requests;
      cells.set(k, c);
    }
    const max = Math.max(...[...cells.values()].map((c) => c.total));
    const ch = 46, m = { l: Math.min(220, 36 + 7 * Math.max(...models.map((s) => s.length))), t: 24, r: 4 };
    const { root, width } = frame(box, m.t + models.length * ch + 4);
    const cw = (width - m.l - m.r) / domains.length;
    domains.forEach((d, j) => root.append(label(m.l + j * cw + cw / 2, 16, d === '' ? '(none)' : fitLabel(d, cw - 6), { class: 'col-label', 'text-anchor': 'middle' })));
    models.forEach((mo, i) => {
      const y0 = m.t + i * ch;
      root.append(svg('rect', { x: 4, y: y0 + ch / 2 - 5, width: 10, height: 10, rx: 2, fill: colour(mo) }),
        label(m.l - 8, y0 + ch / 2 + 4, fitLabel(mo, m.l - 30), { class: 'row-label', 'text-anchor': 'end' }, svg('title', null, mo)));
      domains.forEach((d, j) => {
        const c = cells.get(`${mo}\u0000${d}`) || { total: 0 };
        const x0 = m.l + j * cw + 2, w = cw - 4, h = ch - 4;
        const f = c.total / max;
        const g = svg('g', null, svg('title', null, `${mo} · ${d || '(none)'}: ${fmt.count(c.total)} requests` +
          BANDS.map(([b]) => `\n${b}: ${fmt.count(c[b] || 0)}`).join('')));
        const sh = 7; // the band strip's height, at the bottom of the cell
        g.append(svg('rect', { x: x0, y: y0 + 2, width: w, height: h, rx: 3, class: 'cell-bg' }));
        if (c.total > 0) {
          g.append(svg('rect', { x: x0, y: y0 + 2, width: w, height: h - sh - 1, rx: 3, fill: '#2f6db5', 'fill-opacity': (0.1 + 0.65 * f).toFixed(3) }));
          let acc = 0;
          for (const [b, colr] of BANDS) {
            const v = c[b] || 0;
            if (!v) continue;
            g.append(svg('rect', { x: x0 + (acc / c.total) * w, y: y0 + 2 + h - sh, width: (v / c.total) * w, height: sh, fill: colr }));
            acc += v;
          }
        }
        g.append(label(x0 + w / 2, y0 + 2 + (h - sh) / 2 + 4, c.total ? fmt.count(c.total) : '·',
          { class: f > 0.55 ? 'cell-label inv' : 'cell-label', 'text-anchor': 'middle' }));
        root.append(g);
      });
    });
  }

  function renderKeys(data) {
    const limitCell = (used, limit, f) => ({
      extra: (r) => usageBar(used(r), limit(r)),
      title: (r) => (isNum(limit(r)) && limit(r) > 0 && isNum(used(r)) ? `${fmt.pct(used(r) / limit(r))} of ${f(limit(r))}` : ''),
    });
    const b = (r) => r.budget || {}, rpm = (r) => r.rpm || {}, tpm = (r) => r.tpm || {};
    fillTable($('keys'), [
      text('Key', 'name', (r) => r.name),
      col('Requests', 'requests', (r) => r.requests, fmt.count),
      col('Spend', 'spend_usd', (r) => r.spend_usd, fmt.usd),
      col('Budget', 'budget_usd', (r) => b(r).usd, (v, r) => `${fmt.usd(v)} / ${r.budget.period}`),
      col('Budget spent', 'budget_spent_usd', (r) => b(r).spent_usd, fmt.usd, limitCell((r) => b(r).spent_usd, (r) => b(r).usd, fmt.usd)),
      col('RPM used', 'rpm_used', (r) => rpm(r).used, fmt.count, limitCell((r) => rpm(r).used, (r) => rpm(r).limit, fmt.count)),
      col('RPM limit', 'rpm_limit', (r) => rpm(r).limit, fmt.count),
      col('TPM used', 'tpm_used', (r) => tpm(r).used, fmt.count, limitCell((r) => tpm(r).used, (r) => tpm(r).limit, fmt.count)),
      col('TPM limit', 'tpm_limit', (r) => tpm(r).limit, fmt.count),
    ], data.keys, (r) => ({ 'data-key': r.name }));
  }

  function renderExperiments(data) {
    const rows = data.experiments || [];
    const armName = (r) => `${r.experiment}/${r.arm}`;
    fillTable($('experiments'), [
      text('Experiment', 'experiment', (r) => r.experiment),
      text('Arm', 'arm', (r) => r.arm),
      col('Requests', 'requests', (r) => r.requests, fmt.count),
      col('Spend', 'spend_usd', (r) => r.spend_usd, fmt.usd),
      col('Per request', 'spend_per_request', (r) => r.spend_per_request, fmt.usd),
      col('Fallback rate', 'fallback_rate', (r) => r.fallback_rate && r.fallback_rate.mean, (v, r) => fmtInterval(r.fallback_rate, true)),
      col('Scored', 'scored', (r) => r.scored, fmt.count),
      col('Feedback', 'feedback', (r) => r.feedback && r.feedback.mean, (v, r) => fmtInterval(r.feedback)),
    ], rows, (r) => ({ 'data-arm': armName(r) }));
    intervalChart($('chart-experiments'), rows.map((r, i) => ({
      label: armName(r), colour: PALETTE[i % PALETTE.length],
      iv: r.feedback && isNum(r.feedback.mean) ? r.feedback : null,
    })), { what: 'feedback', empty: rows.length ? 'No scored requests in the experiments' : 'No experiments in this range' });
  }

  function renderDeployments(data) {
    const rate = (r) => (r.calls > 0 ? r.failures / r.calls : null);
    fillTable($('deployments'), [
      text('Deployment', 'deployment', (r) => r.deployment),
      text('Model', 'model', (r) => r.model, { show: (v) => modelLabel(v) }),
      col('Calls', 'calls', (r) => r.calls, fmt.count),
      col('Failures', 'failures', (r) => r.failures, fmt.count, { cls: (r) => (r.failures > 0 ? 'bad' : null) }),
      col('Failure rate', 'failure_rate', rate, fmt.pct, { cls: (r) => (rate(r) >= 0.05 ? 'bad' : null) }),
      col('Upstream latency', 'upstream_ms', (r) => r.upstream_ms, fmt.ms),
      text('Cooling down', 'cooling', (r) => String(Boolean(r.cooling)),
        { show: (v) => el('span', { class: v === 'true' ? 'pill pill-bad' : 'pill' }, v === 'true' ? 'yes' : 'no') }),
    ], data.deployments, (r) => ({ 'data-deployment': r.deployment }));
  }

  function renderCache(data) {
    const c = data.cache, hr = c.hit_rate && isNum(c.hit_rate.mean) ? c.hit_rate : null;
    const rateTile = kpi('cache-hit-rate', 'Hit rate', hr ? hr.mean : null, fmtInterval(hr, true),
      hr ? [num(c.hits, fmt.count), ' of ', num(hr.n, fmt.count), ' gateway requests, 95% interval'] : 'no gateway requests');
    clear($('cache')).append(rateTile,
      kpi('cache-hits', 'Hits', n0(c.hits), fmt.count(c.hits || 0), 'answered from the cache'),
      kpi('cache-saved', 'Saved', n0(c.saved_usd), isNum(c.saved_usd) ? fmt.usd(c.saved_usd) : '', 'what the model calls would have cost'));
  }

  // ---- recent decisions and the decision detail

  let recentById = new Map();

  function renderRecent(data) {
    const full = data.log.prompts === 'full';
    const cut = (s) => (s.length > 80 ? s.slice(0, 79) + '…' : s);
    const cols = [
      col('Time', 'ts_ms', (r) => r.ts_ms, fmtTime, { num: false, title: (r) => new Date(r.ts_ms).toString() }),
      text('Key', 'api_key', (r) => r.api_key),
      text('Endpoint', 'endpoint', (r) => r.endpoint),
      text('Model', 'chosen_model', (r) => r.chosen_model, {
        show: (v) => modelLabel(v),
        title: (r) => (r.decided_model && r.decided_model !== r.chosen_model ? `decided: ${r.decided_model}, answered by ${r.chosen_model}` : ''),
        cls: (r) => (r.decided_model && r.decided_model !== r.chosen_model ? 'fell-back' : null),
      }),
      text('Reason', 'reason', (r) => r.reason, { show: (v) => el('span', { class: 'reason reason-' + v.split(':')[0] }, v) }),
      col('P', 'p', (r) => r.p, fmt.score, { help: "the chosen model's predicted P of success" }),
      col('Expected', 'expected_cost_usd', (r) => r.expected_cost_usd, fmt.usd),
      col('Cost', 'cost_usd', (r) => r.cost_usd, fmt.usd),
      col('Fallbacks', 'fallbacks', (r) => r.fallbacks, fmt.count),
      col('Latency', 'latency_ms', (r) => r.latency_ms, fmt.ms),
      col('Status', 'status', (r) => r.status, fmt.int, { cls: (r) => (r.status >= 400 ? 'bad' : null) }),
    ];
    if (full) {
      cols.push(text('Prompt', 'prompt', (r) => r.prompt,
        { show: (v) => cut(v), title: (r) => r.prompt || '', cls: () => 'prompt' }));
    }
    recentById = new Map((data.recent || []).map((r) => [r.request_id, r]));
    const body = fillTable($('recent'), cols, data.recent,
      (r) => ({ 'data-request-id': r.request_id, tabindex: 0, class: 'row-link', 'aria-label': `decision ${r.request_id}` }));
    const open = (ev) => {
      const tr = ev.target.closest('tr[data-request-id]');
      if (!tr) return;
      if (ev.type === 'keydown' && ev.key !== 'Enter' && ev.key !== ' ') return;
      if (ev.type === 'keydown') ev.preventDefault();
      showDecision(recentById.get(tr.dataset.requestId), tr);
    };
    body.addEventListener('click', open);
    body.addEventListener('keydown', open);
    // Keep the open decision across refreshes when it is still listed.
    const shown = $('decision').hidden ? null : $('decision-id').textContent;
    const tr = shown && body.querySelector(`tr[data-request-id="${CSS.escape(shown)}"]`);
    if (tr) showDecision(recentById.get(shown), tr); else hideDecision();
  }

  function showDecision(r, tr) {
    if (!r) return;
    for (const o of $('recent').querySelectorAll('tr.selected')) o.classList.remove('selected');
    if (tr) tr.classList.add('selected');
    $('decision-id').textContent = r.request_id;
    const meta = clear($('decision-meta'));
    const item = (k, v) => meta.append(el('dt', null, k), el('dd', null, v));
    item('Time', new Date(r.ts_ms).toLocaleString());
    item('Key · endpoint', `${r.api_key ?? DASH} · ${r.endpoint ?? DASH}`);
    item('Status', num(r.status, fmt.int, { class: r.status >= 400 ? 'bad' : null }));
    item('Decided', r.decided_model ? modelLabel(r.decided_model) : DASH);
    item('Answered by', r.chosen_model ? modelLabel(r.chosen_model) : DASH);
    item('Reason', r.reason ?? DASH);
    item('Domain · complexity', [r.domain ?? DASH, ' · ', num(r.complexity, fmt.score)]);
    item('P · expected · cost', [num(r.p, fmt.score), ' · ', num(r.expected_cost_usd, fmt.usd), ' · ', num(r.cost_usd, fmt.usd)]);
    item('Latency', [num(r.latency_ms, fmt.ms), r.cache_hit ? ' · cache hit' : '', r.fallbacks ? ` · ${r.fallbacks} fallback(s)` : '']);
    const hasPrompt = current && current.log.prompts === 'full' && typeof r.prompt === 'string' && r.prompt !== '';
    $('decision-prompt-wrap').hidden = !hasPrompt;
    $('decision-prompt').textContent = hasPrompt ? r.prompt : '';
    const ranking = r.ranking || [];
    const maxCost = Math.max(0, ...ranking.map((x) => x.cost_usd).filter(isNum));
    fillTable($('ranking'), [
      col('#', 'rank', (x) => ranking.indexOf(x) + 1, fmt.int),
      text('Model', 'model', (x) => x.model, { show: (v) => modelLabel(v) }),
      col('P', 'p', (x) => x.p, fmt.score, { extra: (x) => usageBar(x.p, 1, '#2f6db5') }),
      col('Cost', 'cost_usd', (x) => x.cost_usd, fmt.usd, { extra: (x) => (maxCost > 0 ? usageBar(x.cost_usd, maxCost, '#9aa3b5') : null) }),
    ], ranking, (x) => ({
      'data-model': x.model,
      class: [x.model === r.chosen_model ? 'chosen' : '', x.model === r.decided_model && r.decided_model !== r.chosen_model ? 'decided' : '']
        .filter(Boolean).join(' ') || null,
    }));
    fillTable($('attempts'), [
      text('Model', 'model', (a) => a.model),
      text('Deployment', 'deployment', (a) => a.deployment),
      col('Status', 'status', (a) => a.status, fmt.int, { cls: (a) => (a.status >= 400 ? 'bad' : null) }),
      col('Latency', 'latency_ms', (a) => a.latency_ms, fmt.ms),
      text('Error', 'error', (a) => a.error),
    ], r.attempts || []);
    const panel = $('decision');
    panel.hidden = false;
    if (getComputedStyle(panel).position !== 'fixed') panel.scrollIntoView({ block: 'nearest' });
  }

  function hideDecision() {
    $('decision').hidden = true;
    for (const o of $('recent').querySelectorAll('tr.selected')) o.classList.remove('selected');
  }

  // ---------------------------------------------------------------- render, load and controls

  let current = null;

  function modelNames(d) {
    const s = d.savings;
    return [...(d.series || []).map((x) => x.model), ...(d.models || []).map((x) => x.model),
      ...(s.by_model || []).map((x) => x.model), ...(s.candidates || []), ...(d.traffic || []).map((x) => x.model),
      ...(d.quality || []).map((x) => x.model), ...(d.deployments || []).map((x) => x.model)];
  }

  function render(data, report) {
    current = data;
    assignColours(modelNames(data));
    renderHeader(data, report);
    renderKpis(data);
    renderTime(data);
    renderSavings(data);
    renderQuality(data);
    renderTraffic(data);
    renderKeys(data);
    renderExperiments(data);
    renderDeployments(data);
    renderCache(data);
    renderRecent(data);
    $('error').hidden = true;
    setState('ready');
  }

  /** Charts take their width from their boxes: redraw them when the window is resized. */
  function redrawCharts() {
    if (!current) return;
    renderTime(current); renderSavings(current); renderQuality(current); renderTraffic(current); renderExperiments(current);
  }

  function fail(message) {
    const e = $('error');
    e.textContent = message;
    e.hidden = false;
    setState('error');
  }

  const params = { from: '24h', reference: null };
  let seq = 0;

  async function load() {
    const mine = ++seq;
    setState('loading');
    const q = new URLSearchParams({ from: params.from });
    if (params.reference) q.set('reference', params.reference);
    $('refresh').disabled = true;
    try {
      const res = await fetch('/admin/stats?' + q.toString(), { credentials: 'same-origin', headers: { Accept: 'application/json' } });
      if (mine !== seq) return;
      if (res.status === 401 || res.status === 403) { window.location.href = '/ui'; return; }
      let body = null;
      try { body = await res.json(); } catch (_) { /* not JSON */ }
      if (mine !== seq) return;
      if (!res.ok) return fail((body && body.error && body.error.message) || `The server answered ${res.status} ${res.statusText}.`);
      if (!body || !body.range) return fail('The server sent an answer that is not the stats JSON.');
      render(body, false);
      // Keep the choices in the address (without the defaults), so that a reload shows the same view.
      if (params.from === '24h') q.delete('from');
      const u = new URL(window.location.href);
      u.search = q.toString();
      window.history.replaceState(null, '', u);
    } catch (err) {
      if (mine !== seq) return;
      console.error(err);
      fail(`Could not load the stats: ${err.message}`);
    } finally {
      if (mine === seq) $('refresh').disabled = false;
    }
  }

  function startLive() {
    const q = new URLSearchParams(window.location.search);
    params.from = q.get('from') || '24h';
    params.reference = q.get('reference') || null;
    const range = $('range');
    if (![...range.options].some((o) => o.value === params.from)) range.append(el('option', { value: params.from }, `From ${params.from}`));
    range.value = params.from;
    range.addEventListener('change', () => { params.from = range.value; load(); });
    $('reference').addEventListener('change', (ev) => { params.reference = ev.target.value || null; load(); });
    $('refresh').addEventListener('click', () => load());
    load();
  }

  function startReport(node) {
    document.body.classList.add('report');
    for (const n of document.querySelectorAll('.live-only')) n.hidden = true;
    let data;
    try {
      data = JSON.parse(node.textContent);
    } catch (err) {
      return fail(`The report's data is not valid JSON: ${err.message}`);
    }
    render(data, true);
  }

  function start() {
    $('decision-close').addEventListener('click', hideDecision);
    document.addEventListener('keydown', (ev) => { if (ev.key === 'Escape' && !$('decision').hidden) hideDecision(); });
    let timer = 0;
    let lastWidth = window.innerWidth;
    window.addEventListener('resize', () => {
      if (window.innerWidth === lastWidth) return;
      lastWidth = window.innerWidth;
      clearTimeout(timer);
      timer = setTimeout(() => { try { redrawCharts(); } catch (err) { console.error(err); } }, 150);
    });
    const node = $('data');
    try {
      if (node) startReport(node); else startLive();
    } catch (err) {
      console.error(err);
      fail(`The dashboard failed to draw the stats: ${err.message}`);
    }
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
