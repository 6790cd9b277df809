/*
 * switchyard dashboard: charts.js
 *
 * The drawing half of the dashboard, loaded before app.js (see index.html): DOM and SVG element helpers,
 * number and local-time formatting, the model colours and legends, the generic table builder, and the
 * charts, all hand-made inline SVG: time-series bars, savings bar, quality and experiment intervals,
 * traffic grid. Plain ES2020, no libraries. It only defines things, touching no DOM when it loads (in a
 * static report it runs inline in <head>, before the body exists), and its one global is
 * window.SwitchyardCharts; app.js loads the data and says what goes where.
 * Every value goes into the page through textContent or attributes, never as HTML; numbers carry their
 * raw JSON value in data-value and table cells carry data-field (the test hooks app.js describes).
 */
'use strict';
window.SwitchyardCharts = (() => {
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
  const clear = (node) => { node.replaceChildren(); return node; };

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

  /** The savings chart: actual spend (stacked by model) against the same requests at the reference's prices. */
  function savingsChart(box, s) {
    const ref = s.reference;
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

  /** The quality chart: observed feedback with its interval and the predicted diamond, and their key. */
  function qualityChart(box, rows) {
    intervalChart(box, rows, { what: 'observed', empty: 'No scored requests in this range' });
    if (box.querySelector('svg')) {
      box.append(el('div', { class: 'legend' },
        el('span', { class: 'legend-item' }, el('span', { class: 'key-dot' }), 'observed feedback, 95% interval'),
        el('span', { class: 'legend-item' }, el('span', { class: 'key-diamond' }), 'predicted P of success')));
    }
  }

  /** The traffic chart, from the traffic rows of /admin/stats [{model, domain, band, requests}]. */
  function trafficChart(box, rows) {
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

  return Object.freeze({
    // elements and formatting
    el, clear, DASH, isNum, fmt, fmtInterval, fmtTime, fmtDateTime, fmtBucket, num,
    // colours: assignColours(names) once per render, then colour(model)
    PALETTE, BANDS, assignColours, colour, legend,
    // tables
    col, text, fillTable, usageBar, modelLabel,
    // charts
    timeChart, intervalChart, savingsChart, qualityChart, trafficChart,
  });
})();
