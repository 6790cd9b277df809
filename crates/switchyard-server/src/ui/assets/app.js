/*
 * switchyard dashboard: app.js
 *
 * Draws the JSON of GET /admin/stats (docs/admin-stats.md) into the skeleton of index.html: data loading,
 * the controls, the KPI tiles, each panel's tables, the decision panel and start-up. The element helpers,
 * formatting, colours, table builder and charts (hand-made inline SVG) are in charts.js, loaded first,
 * which defines window.SwitchyardCharts. Plain ES2020, no libraries. Two modes:
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
  const {
    el, clear, DASH, isNum, fmt, fmtInterval, fmtTime, fmtDateTime, fmtBucket, num,
    PALETTE, BANDS, assignColours, colour, legend,
    col, text, fillTable, usageBar, modelLabel,
    timeChart, intervalChart, savingsChart, qualityChart, trafficChart,
  } = window.SwitchyardCharts;
  const $ = (id) => document.getElementById(id);
  const setState = (s) => { document.body.dataset.state = s; };

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
    savingsChart($('chart-savings'), s);
  }

  function renderQuality(data) {
    // A row per model, then one per domain of that model.
    const ivOf = (r) => (r.feedback && isNum(r.feedback.mean) ? r.feedback : null);
    const rows = (data.models || []).flatMap((r) => [
      { label: r.model, colour: colour(r.model), iv: ivOf(r), predicted: r.predicted },
      ...(data.quality || []).filter((q) => q.model === r.model)
        .map((q) => ({ label: q.domain ?? '(none)', colour: colour(r.model), iv: ivOf(q), predicted: q.predicted, sub: true })),
    ]);
    qualityChart($('chart-quality'), rows);
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
    trafficChart($('chart-traffic'), rows);
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
