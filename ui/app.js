// emberscope-agent UI: plain JavaScript, canvas rendering, no dependencies.
'use strict';

const $ = (id) => document.getElementById(id);
const state = {
  view: 'flame',
  services: [],
  service: '',
  type: '',
  env: '', version: '', host: '', tags: '',
  rangeSec: 3600,
  from: null, to: null, // unix seconds when a custom range is selected
  search: '',
  colour: 'provenance',
  groupLine: false,
  flame: null, zoom: null,
  diff: null,
  profile: null,
};
let token = localStorage.getItem('emberscope-token') || '';

// ---------- helpers ----------
async function api(path, params) {
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) if (v !== '' && v != null) qs.set(k, v);
  const url = path + (qs.toString() ? '?' + qs : '');
  const headers = token ? { Authorization: 'Bearer ' + token } : {};
  const r = await fetch(url, { headers });
  if (r.status === 401) {
    const t = prompt('This agent needs its auth token (--auth-token):');
    if (t) { token = t; localStorage.setItem('emberscope-token', t); return api(path, params); }
    throw new Error('unauthorized');
  }
  if (!r.ok) {
    let msg = r.statusText;
    try { msg = (await r.json()).error || msg; } catch (e) { /* not JSON */ }
    throw new Error(msg);
  }
  return r.json();
}

function range() {
  if (state.from != null && state.to != null) return { from: state.from, to: state.to };
  const now = Math.floor(Date.now() / 1000);
  return { from: now - state.rangeSec, to: now };
}

function filters() {
  const p = { service: state.service, env: state.env, version: state.version, host: state.host };
  for (const part of state.tags.split(',')) {
    const t = part.trim();
    const i = t.indexOf(':');
    if (i > 0) p[t.slice(0, i).trim()] = t.slice(i + 1).trim();
  }
  return p;
}

function sel(extra) { return Object.assign({}, filters(), range(), { type: state.type }, extra || {}); }

function fmt(v, unit) {
  if (v == null) return '';
  const a = Math.abs(v);
  if (unit === 'nanoseconds') {
    if (a >= 3.6e12) return (v / 3.6e12).toFixed(2) + ' h';
    if (a >= 6e10) return (v / 6e10).toFixed(2) + ' min';
    if (a >= 1e9) return (v / 1e9).toFixed(2) + ' s';
    if (a >= 1e6) return (v / 1e6).toFixed(1) + ' ms';
    if (a >= 1e3) return (v / 1e3).toFixed(1) + ' µs';
    return v + ' ns';
  }
  if (unit === 'bytes') {
    if (a >= 2 ** 30) return (v / 2 ** 30).toFixed(2) + ' GiB';
    if (a >= 2 ** 20) return (v / 2 ** 20).toFixed(1) + ' MiB';
    if (a >= 1024) return (v / 1024).toFixed(1) + ' KiB';
    return v + ' B';
  }
  if (a >= 1e9) return (v / 1e9).toFixed(2) + 'G';
  if (a >= 1e6) return (v / 1e6).toFixed(2) + 'M';
  if (a >= 1e4) return (v / 1e3).toFixed(1) + 'k';
  return String(v);
}
const pct = (x) => (x * 100).toFixed(x < 0.001 ? 3 : 1) + '%';
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' }[c]));
function hash(s) { let h = 2166136261; for (let i = 0; i < s.length; i++) { h ^= s.charCodeAt(i); h = Math.imul(h, 16777619); } return h >>> 0; }
function fmtTime(sec) { const d = new Date(sec * 1000); return d.toLocaleString(); }

function setOptions(select, values, current, allLabel) {
  const opts = (allLabel != null ? [['', allLabel]] : []).concat(values.map((v) => Array.isArray(v) ? v : [v, v]));
  select.innerHTML = opts.map(([v, l]) => `<option value="${esc(v)}">${esc(l)}</option>`).join('');
  if (opts.some(([v]) => v === current)) select.value = current;
  return select.value;
}

const tooltip = $('tooltip');
function showTip(ev, text) {
  tooltip.textContent = text;
  tooltip.hidden = false;
  const w = tooltip.offsetWidth, h = tooltip.offsetHeight;
  let x = ev.clientX + 14, y = ev.clientY + 14;
  if (x + w > innerWidth - 4) x = ev.clientX - w - 14;
  if (y + h > innerHeight - 4) y = ev.clientY - h - 14;
  tooltip.style.left = x + 'px';
  tooltip.style.top = y + 'px';
}
function hideTip() { tooltip.hidden = true; }

function setupCanvas(canvas, cssHeight) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.parentElement.clientWidth || 800;
  canvas.style.height = cssHeight + 'px';
  canvas.width = Math.round(w * dpr);
  canvas.height = Math.round(cssHeight * dpr);
  const ctx = canvas.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, cssHeight);
  return { ctx, w, h: cssHeight };
}

// ---------- URL state ----------
function saveHash() {
  const p = new URLSearchParams();
  for (const k of ['view', 'service', 'type', 'env', 'version', 'host', 'tags', 'search']) if (state[k]) p.set(k, state[k]);
  if (state.from != null) { p.set('from', state.from); p.set('to', state.to); } else p.set('range', state.rangeSec);
  if (state.profile) p.set('profile', state.profile);
  history.replaceState(null, '', '#' + p);
}
function loadHash() {
  const p = new URLSearchParams(location.hash.slice(1));
  for (const k of ['view', 'service', 'type', 'env', 'version', 'host', 'tags', 'search']) if (p.get(k)) state[k] = p.get(k);
  if (p.get('from') && p.get('to')) { state.from = +p.get('from'); state.to = +p.get('to'); }
  if (p.get('range')) state.rangeSec = +p.get('range');
  if (p.get('profile')) state.profile = +p.get('profile');
}

// ---------- loading ----------
async function loadServices() {
  state.services = await api('/api/services');
  const empty = state.services.length === 0;
  $('empty').hidden = !empty;
  $('content').hidden = empty;
  if (empty) {
    const host = location.hostname || '127.0.0.1';
    const port = location.port || '8126';
    $('empty-cmd').textContent = `pip install ddtrace\nDD_PROFILING_ENABLED=true DD_SERVICE=my-app \\\n  DD_TRACE_AGENT_URL=http://${host}:${port} \\\n  ddtrace-run python app.py`;
    return false;
  }
  const names = state.services.map((s) => [s.service, `${s.service} (${s.profiles})`]);
  state.service = setOptions($('service'), names, state.service || state.services[0].service);
  const svc = state.services.find((s) => s.service === state.service);
  state.env = setOptions($('env'), svc.envs, state.env, 'all');
  state.version = setOptions($('version'), svc.versions, state.version, 'all');
  state.host = setOptions($('host'), svc.hosts, state.host, 'all');
  // If the default range has no data, widen it to include the last upload.
  if (state.from == null) {
    const lastSec = svc.last_seen_ns / 1e9;
    const now = Date.now() / 1000;
    if (now - lastSec > state.rangeSec) {
      const choices = [900, 3600, 21600, 86400, 604800];
      state.rangeSec = choices.find((c) => c > now - lastSec + 60) || 604800;
      $('range').value = String(state.rangeSec);
    }
  }
  return true;
}

async function loadTypes() {
  const types = await api('/api/types', Object.assign({}, filters(), range()));
  const preferred = ['cpu-time', 'wall-time', 'alloc-space', 'heap-space', 'lock-acquire-wait', 'exception-samples'];
  types.sort((a, b) => {
    const ia = preferred.indexOf(a.name), ib = preferred.indexOf(b.name);
    return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || a.name.localeCompare(b.name);
  });
  state.types = types;
  const cur = state.type && types.some((t) => t.name === state.type) ? state.type : (types[0] ? types[0].name : '');
  state.type = setOptions($('type'), types.map((t) => [t.name, `${t.name} (${t.unit})`]), cur);
}

async function refresh() {
  hideTip();
  saveHash();
  try {
    if (!(await loadServices())) return;
    await loadTypes();
    const r = range();
    $('range-label').textContent = `${fmtTime(r.from)} — ${fmtTime(r.to)}`;
    await loadTimeseries();
    if (state.view === 'flame') await loadFlame();
    else if (state.view === 'compare') await loadCompare();
    else await loadProfiles();
  } catch (e) {
    console.error(e);
    $('flame-info').innerHTML = `<span class="error">${esc(e.message)}</span>`;
  }
}

// ---------- time series with drag-select ----------
const ts = { data: null };
async function loadTimeseries() {
  ts.data = await api('/api/timeseries', sel());
  $('ts-title').textContent = `${state.type || 'total'} over time`;
  drawTimeseries();
}
function drawTimeseries(dragA, dragB) {
  const canvas = $('timeseries');
  const { ctx, w, h } = setupCanvas(canvas, 90);
  const d = ts.data;
  if (!d) return;
  const pts = d.points;
  const max = Math.max(1, ...pts.map((p) => p.value));
  const x = (t) => ((t - d.from) / Math.max(1, d.to - d.from)) * w;
  const bw = Math.max(1, (d.step / Math.max(1, d.to - d.from)) * w - 1);
  ctx.fillStyle = '#f0f1f4';
  ctx.fillRect(0, 0, w, h);
  ctx.fillStyle = '#e8663d';
  for (const p of pts) {
    if (!p.value) continue;
    const bh = (p.value / max) * (h - 16);
    ctx.fillRect(x(p.t), h - bh, bw, bh);
  }
  ctx.fillStyle = '#556';
  ctx.font = '11px system-ui';
  ctx.fillText('max ' + fmt(max, d.unit) + ' per ' + d.step + ' s', 4, 12);
  if (dragA != null) {
    ctx.fillStyle = 'rgba(40,90,200,.25)';
    ctx.fillRect(Math.min(dragA, dragB), 0, Math.abs(dragB - dragA), h);
  }
}
(function setupDrag() {
  const c = $('timeseries');
  let start = null;
  const px = (ev) => ev.clientX - c.getBoundingClientRect().left;
  c.addEventListener('mousedown', (ev) => { start = px(ev); });
  c.addEventListener('mousemove', (ev) => {
    if (start != null) drawTimeseries(start, px(ev));
    else if (ts.data) {
      const t = ts.data.from + (px(ev) / c.clientWidth) * (ts.data.to - ts.data.from);
      const p = ts.data.points.find((q) => t >= q.t && t < q.t + ts.data.step);
      if (p) showTip(ev, `${fmtTime(p.t)}\n${fmt(p.value, ts.data.unit)} · ${p.profiles} uploads`);
    }
  });
  c.addEventListener('mouseleave', hideTip);
  window.addEventListener('mouseup', (ev) => {
    if (start == null) return;
    const end = px(ev);
    const a = Math.min(start, end), b = Math.max(start, end);
    start = null;
    if (b - a < 4 || !ts.data) { drawTimeseries(); return; }
    const span = ts.data.to - ts.data.from;
    state.from = Math.floor(ts.data.from + (a / c.clientWidth) * span);
    state.to = Math.ceil(ts.data.from + (b / c.clientWidth) * span);
    $('range').querySelector('option[value=custom]').hidden = false;
    $('range').value = 'custom';
    state.zoom = null;
    refresh();
  });
  c.addEventListener('dblclick', () => {
    state.from = state.to = null;
    $('range').value = String(state.rangeSec);
    refresh();
  });
})();

// ---------- flame graph ----------
const KIND_COLOURS = { user: [232, 102, 61], library: [66, 133, 214], stdlib: [67, 160, 100], runtime: [150, 150, 160] };
function nodeColour(n, mode, provenance) {
  if (mode === 'provenance' && provenance && n.kind) {
    const base = KIND_COLOURS[n.kind] || KIND_COLOURS.runtime;
    const j = (hash(n.lib || n.name) % 40) - 20;
    return `rgb(${clamp(base[0] + j)},${clamp(base[1] + j)},${clamp(base[2] + j)})`;
  }
  const h = hash(n.name);
  return `hsl(${15 + (h % 40)},${70 + (h >> 8) % 20}%,${55 + (h >> 16) % 15}%)`;
}
const clamp = (v) => Math.max(0, Math.min(255, v));
function diffColour(n, totA, totB) {
  const a = (n.base_total || 0) / Math.max(1, totA);
  const b = n.total / Math.max(1, totB);
  if (a === 0 && b === 0) return '#ccc';
  const r = (b - a) / Math.max(a, b); // -1..1
  const k = Math.min(1, Math.abs(r));
  if (Math.abs(r) < 0.05) return '#c8c8c8';
  return r > 0 ? `rgb(${216},${Math.round(200 - 150 * k)},${Math.round(200 - 150 * k)})`
    : `rgb(${Math.round(200 - 150 * k)},${Math.round(190 - 30 * k)},${Math.round(200 - 130 * k)})`;
}

function annotate(root) {
  // parent pointers and depth for zoom / ancestors
  const stack = [[root, null, 0]];
  let maxDepth = 0;
  while (stack.length) {
    const [n, p, d] = stack.pop();
    n.parent = p; n.depth = d;
    if (d > maxDepth) maxDepth = d;
    for (const c of n.children) stack.push([c, n, d + 1]);
  }
  root.maxDepth = maxDepth;
}

// Draws an icicle (root on top). opts: {canvas, data, zoom, diff, onClick, search}
function drawFlame(opts) {
  const { canvas, data } = opts;
  const rowH = 18;
  const root = data.root;
  const zoom = opts.zoom || root;
  const height = Math.max(80, (root.maxDepth + 2) * rowH);
  const { ctx, w } = setupCanvas(canvas, Math.min(height, 4000));
  const rects = [];
  let re = null;
  if (opts.search) { try { re = new RegExp(opts.search, 'i'); } catch (e) { re = null; } }
  let matched = 0;
  ctx.font = '11px ui-monospace, SFMono-Regular, Menlo, monospace';
  ctx.textBaseline = 'middle';
  const weight = (n) => opts.diff ? Math.max(n.total / Math.max(1, data.total), (n.base_total || 0) / Math.max(1, data.base_total || 1)) : n.total;
  const draw = (n, x, width, depth, dim) => {
    if (width < 0.3) return;
    const y = depth * rowH;
    let colour = opts.diff ? diffColour(n, data.base_total, data.total) : nodeColour(n, state.colour, data.provenance);
    const hit = re && re.test(n.name);
    if (hit) { matched++; colour = '#d63cc8'; } else if (re) colour = dim ? '#eee' : '#ddd';
    ctx.fillStyle = dim ? '#e4e4e8' : colour;
    ctx.fillRect(x, y, Math.max(0.5, width - 0.5), rowH - 1);
    if (width > 30) {
      ctx.fillStyle = dim ? '#888' : '#111';
      const label = n.name;
      const maxChars = Math.floor((width - 6) / 6.6);
      ctx.fillText(label.length > maxChars ? label.slice(0, Math.max(0, maxChars - 1)) + '…' : label, x + 3, y + rowH / 2);
    }
    rects.push({ x, y, w: width, h: rowH, n });
    const denom = opts.diff ? null : n.total;
    let cx = x;
    for (const c of n.children) {
      const cw = opts.diff ? (weight(c) / diffDenom(n)) * width : (c.total / Math.max(1, denom)) * width;
      draw(c, cx, cw, depth + 1, false);
      cx += cw;
    }
  };
  // In a diff a node's width is its larger share (baseline or comparison);
  // children split it by their own larger share, never overflowing.
  function diffDenom(n) {
    const sum = n.children.reduce((acc, c) => acc + weight(c), 0);
    return Math.max(1e-12, weight(n), sum);
  }
  // ancestors of the zoomed node, full width and dimmed
  const chain = [];
  for (let p = zoom.parent; p; p = p.parent) chain.unshift(p);
  chain.forEach((p, i) => {
    ctx.fillStyle = '#e4e4e8';
    ctx.fillRect(0, i * rowH, w - 0.5, rowH - 1);
    ctx.fillStyle = '#666';
    ctx.fillText(p.name, 3, i * rowH + rowH / 2);
    rects.push({ x: 0, y: i * rowH, w, h: rowH, n: p });
  });
  draw(zoom, 0, w, chain.length, false);
  canvas._rects = rects;
  canvas._data = data;
  return matched;
}

function tipText(n, data, diff) {
  const unit = data.unit;
  const lines = [n.name];
  if (n.file) lines.push(`${n.file}${n.line ? ':' + n.line : ''}`);
  if (n.kind) lines.push(`provenance: ${n.kind}${n.lib ? ' (' + n.lib + ')' : ''}`);
  if (diff) {
    const a = (n.base_total || 0) / Math.max(1, data.base_total), b = n.total / Math.max(1, data.total);
    lines.push(`baseline:   ${pct(a)} (${fmt(n.base_total || 0, unit)})`);
    lines.push(`comparison: ${pct(b)} (${fmt(n.total, unit)})`);
    lines.push(`change: ${b >= a ? '+' : ''}${((b - a) * 100).toFixed(2)} points of total`);
  } else {
    lines.push(`total: ${fmt(n.total, unit)} (${pct(n.total / Math.max(1, data.total))})`);
    lines.push(`self:  ${fmt(n.self, unit)} (${pct(n.self / Math.max(1, data.total))})`);
  }
  return lines.join('\n');
}

function hookCanvas(canvas, onClick, diff) {
  const find = (ev) => {
    const r = canvas.getBoundingClientRect();
    const x = ev.clientX - r.left, y = ev.clientY - r.top;
    return (canvas._rects || []).find((q) => x >= q.x && x < q.x + q.w && y >= q.y && y < q.y + q.h);
  };
  canvas.addEventListener('mousemove', (ev) => {
    const hit = find(ev);
    canvas.style.cursor = hit ? 'pointer' : 'default';
    if (hit) showTip(ev, tipText(hit.n, canvas._data, diff)); else hideTip();
  });
  canvas.addEventListener('mouseleave', hideTip);
  canvas.addEventListener('click', (ev) => { const hit = find(ev); if (hit) onClick(hit.n); });
}

async function loadFlame() {
  const p = sel({ max_nodes: 3000, group: state.groupLine ? 'line' : '' });
  const [fg, top] = await Promise.all([api('/api/flamegraph', p), api('/api/top', Object.assign({}, p, { limit: 200 }))]);
  annotate(fg.root);
  state.flame = fg;
  state.zoom = null;
  renderFlame();
  renderTop(top);
  const r = range();
  const dl = new URLSearchParams(Object.entries(sel()).filter(([, v]) => v !== '' && v != null));
  $('download').href = '/api/pprof?' + dl;
  $('download').setAttribute('download', `${state.service}-${state.type}-${r.from}.pb.gz`);
  $('flame-info').textContent = `${fg.profiles} uploads · ${fmt(fg.total, fg.unit)} · ${fg.nodes} nodes${fg.truncated ? ' (small frames hidden)' : ''}`;
  renderLegend(fg);
}

function renderLegend(fg) {
  const el = $('legend');
  if (!fg.provenance || state.colour !== 'provenance') { el.innerHTML = fg.provenance ? '' : '<span>no code-provenance.json uploaded: colours are by function name</span>'; return; }
  el.innerHTML = Object.entries({ user: 'your code', library: 'libraries', stdlib: 'standard library', runtime: 'runtime / native' })
    .map(([k, l]) => `<span><span class="sw" style="background:rgb(${KIND_COLOURS[k].join(',')})"></span>${l}</span>`).join('');
}

function renderFlame() {
  if (!state.flame) return;
  const matched = drawFlame({ canvas: $('flame'), data: state.flame, zoom: state.zoom, search: state.search });
  if (state.search) $('flame-info').dataset.matches = matched;
  if (state.flame.total === 0) {
    const { ctx } = { ctx: $('flame').getContext('2d') };
    ctx.fillStyle = '#889';
    ctx.fillText('No samples of this type in the selected range. Try another type or a wider range.', 10, 40);
  }
}

hookCanvas($('flame'), (n) => { state.zoom = n.parent ? n : null; renderFlame(); }, false);

let topData = null, topSort = 'self';
function renderTop(top) {
  if (top) topData = top;
  if (!topData) return;
  const fns = topData.functions.slice().sort((a, b) => b[topSort] - a[topSort]);
  let re = null;
  if (state.search) { try { re = new RegExp(state.search, 'i'); } catch (e) { re = null; } }
  const tot = Math.max(1, topData.total);
  $('top').querySelector('tbody').innerHTML = fns.filter((f) => !re || re.test(f.name)).slice(0, 200).map((f) =>
    `<tr data-name="${esc(f.name)}" title="${esc(f.file)}"><td class="fn">${esc(f.name)}</td><td class="num">${pct(f.self / tot)}</td><td class="num">${pct(f.total / tot)}</td></tr>`).join('');
}
$('top').addEventListener('click', (ev) => {
  const th = ev.target.closest('th[data-sort]');
  if (th) { topSort = th.dataset.sort; renderTop(); return; }
  const tr = ev.target.closest('tr[data-name]');
  if (!tr) return;
  const name = tr.dataset.name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  state.search = '^' + name + '$';
  $('search').value = state.search;
  renderFlame();
  saveHash();
});

// ---------- compare ----------
async function loadCompare() {
  const mode = $('compare-mode').value;
  const svc = state.services.find((s) => s.service === state.service);
  const versions = svc ? svc.versions : [];
  const showV = mode === 'versions';
  $('cmp-a-wrap').hidden = !showV;
  $('cmp-b-wrap').hidden = !showV;
  const p = Object.assign(sel({ max_nodes: 3000 }), { version: '' });
  delete p.version;
  const r = range();
  if (showV) {
    if (versions.length < 1) { $('cmp-info').textContent = 'This service reports no versions; compare time ranges instead.'; return; }
    const a = setOptions($('cmp-a'), versions, $('cmp-a').value || versions[0]);
    const b = setOptions($('cmp-b'), versions, $('cmp-b').value || versions[versions.length - 1]);
    p.a_version = a; p.b_version = b;
  } else if (mode === 'ranges') {
    const span = r.to - r.from;
    p.a_from = r.from - span; p.a_to = r.from; p.b_from = r.from; p.b_to = r.to;
  } else {
    const mid = Math.floor((r.from + r.to) / 2);
    p.a_from = r.from; p.a_to = mid; p.b_from = mid; p.b_to = r.to;
  }
  const d = await api('/api/diff', p);
  annotate(d.root);
  state.diff = d;
  state.diffZoom = null;
  $('cmp-info').textContent = `baseline ${d.base_profiles} uploads (${fmt(d.base_total, d.unit)}) · comparison ${d.profiles} uploads (${fmt(d.total, d.unit)}) · widths and colours use share of total`;
  renderDiff();
}
function renderDiff() {
  if (!state.diff) return;
  drawFlame({ canvas: $('diff'), data: state.diff, zoom: state.diffZoom, diff: true, search: $('cmp-search').value });
}
hookCanvas($('diff'), (n) => { state.diffZoom = n.parent ? n : null; renderDiff(); }, true);

// ---------- profile list + single profile ----------
async function loadProfiles() {
  const list = await api('/api/profiles', Object.assign({}, filters(), range(), { limit: 500 }));
  const t = state.type;
  const unit = (state.types || []).find((x) => x.name === t);
  $('profiles-total-h').textContent = t || 'Total';
  $('profiles-table').querySelector('tbody').innerHTML = list.map((p) =>
    `<tr data-id="${p.id}" class="${p.id === state.profile ? 'selected' : ''}"><td>${esc(new Date(p.start_ns / 1e6).toLocaleString())}</td><td>${esc(p.host || '—')}</td><td>${esc(p.version)}</td><td title="${esc(p.runtime_id)}">${esc(p.runtime_id.slice(0, 8))}</td><td class="num">${fmt(p.totals[t] || 0, unit && unit.unit)}</td></tr>`).join('')
    || '<tr><td colspan="5" class="muted">No uploads in this range.</td></tr>';
  if (state.profile && list.some((p) => p.id === state.profile)) await loadSingle(state.profile);
}
$('profiles-table').addEventListener('click', (ev) => {
  const tr = ev.target.closest('tr[data-id]');
  if (!tr) return;
  for (const r of $('profiles-table').querySelectorAll('tr.selected')) r.classList.remove('selected');
  tr.classList.add('selected');
  state.profile = +tr.dataset.id;
  saveHash();
  loadSingle(state.profile);
});

async function loadSingle(id) {
  const [info, tl, fg] = await Promise.all([
    api('/api/profiles/' + id),
    api('/api/timeline', { profile: id }),
    api('/api/flamegraph', { profile: id, type: state.type, max_nodes: 2000 }),
  ]);
  $('single-empty').hidden = true;
  $('single-body').hidden = false;
  $('single-title').textContent = `Upload ${id} · ${info.service} ${info.version} · ${info.host} · ${new Date(info.start_ns / 1e6).toLocaleString()} (${((info.end_ns - info.start_ns) / 1e9).toFixed(1)} s)`;
  $('single-download').href = '/api/pprof?profile=' + id;
  $('single-download').setAttribute('download', `profile-${id}.pb.gz`);
  $('single-event').textContent = JSON.stringify(info.event, null, 2);
  state.timeline = tl;
  drawTimeline();
  annotate(fg.root);
  state.singleFlame = fg;
  state.singleZoom = null;
  drawFlame({ canvas: $('single-flame'), data: fg, zoom: null, search: state.search });
}

function drawTimeline() {
  const tl = state.timeline;
  const canvas = $('timeline');
  const laneH = 22, labelW = 150;
  const lanes = tl.lanes;
  const { ctx, w } = setupCanvas(canvas, Math.max(40, lanes.length * laneH + 20));
  // The extent covers the upload's period and every event (the last upload
  // of a process can be shorter than the samples it carries).
  let lo = 0, hi = tl.end_ns - tl.start_ns;
  for (const lane of lanes) for (const [end, dur] of lane.events) { lo = Math.min(lo, end - dur); hi = Math.max(hi, end); }
  const span = Math.max(1, hi - lo);
  const x = (off) => labelW + ((off - lo) / span) * (w - labelW - 4);
  ctx.font = '11px system-ui';
  ctx.textBaseline = 'middle';
  const rects = [];
  $('timeline-info').textContent = lanes.length ? `${tl.type} · ${lanes.length} threads${tl.untimed ? ` · ${tl.untimed} samples without timestamps` : ''}` : '';
  if (!lanes.length) { ctx.fillStyle = '#889'; ctx.fillText('This upload has no per-sample timestamps (timeline disabled in the profiler).', 10, 20); }
  lanes.forEach((lane, i) => {
    const y = i * laneH;
    ctx.fillStyle = i % 2 ? '#fafafc' : '#f1f2f6';
    ctx.fillRect(0, y, w, laneH);
    ctx.fillStyle = '#334';
    ctx.fillText((lane.thread_name || String(lane.thread_id)).slice(0, 22), 4, y + laneH / 2);
    for (const [end, dur, si] of lane.events) {
      const x0 = x(Math.max(0, end - dur)), x1 = x(end);
      const stack = tl.stacks[si] || [];
      const leaf = tl.frames[stack[0]] || ['?', '', 0];
      ctx.fillStyle = `hsl(${hash(leaf[0]) % 360},55%,58%)`;
      ctx.fillRect(x0, y + 3, Math.max(1, x1 - x0), laneH - 6);
      rects.push({ x: x0, y, w: Math.max(2, x1 - x0), h: laneH, si, dur });
    }
  });
  ctx.fillStyle = '#667';
  ctx.fillText((lo / 1e9).toFixed(1) + ' s', labelW, lanes.length * laneH + 10);
  ctx.fillText((hi / 1e9).toFixed(1) + ' s', w - 40, lanes.length * laneH + 10);
  canvas._tl = rects;
}
(function hookTimeline() {
  const c = $('timeline');
  c.addEventListener('mousemove', (ev) => {
    const r = c.getBoundingClientRect();
    const x = ev.clientX - r.left, y = ev.clientY - r.top;
    const hit = (c._tl || []).find((q) => x >= q.x && x < q.x + q.w && y >= q.y && y < q.y + q.h);
    if (!hit) { hideTip(); return; }
    const tl = state.timeline;
    const frames = (tl.stacks[hit.si] || []).slice(0, 12).map((f) => { const fr = tl.frames[f]; return `${fr[0]}  ${fr[1].split('/').pop()}:${fr[2]}`; });
    showTip(ev, `${fmt(hit.dur, tl.unit)}\n` + frames.join('\n'));
  });
  c.addEventListener('mouseleave', hideTip);
})();
hookCanvas($('single-flame'), (n) => {
  state.singleZoom = n.parent ? n : null;
  drawFlame({ canvas: $('single-flame'), data: state.singleFlame, zoom: state.singleZoom, search: state.search });
}, false);

// ---------- controls ----------
function setView(v) {
  state.view = v;
  for (const b of document.querySelectorAll('.tab')) b.classList.toggle('active', b.dataset.view === v);
  $('view-flame').hidden = v !== 'flame';
  $('view-compare').hidden = v !== 'compare';
  $('view-profiles').hidden = v !== 'profiles';
  refresh();
}
for (const b of document.querySelectorAll('.tab')) b.addEventListener('click', () => setView(b.dataset.view));
$('service').addEventListener('change', (e) => { state.service = e.target.value; state.env = state.version = state.host = ''; state.profile = null; refresh(); });
$('type').addEventListener('change', (e) => { state.type = e.target.value; refresh(); });
for (const k of ['env', 'version', 'host']) $(k).addEventListener('change', (e) => { state[k] = e.target.value; refresh(); });
$('tagfilter').addEventListener('change', (e) => { state.tags = e.target.value; refresh(); });
$('range').addEventListener('change', (e) => {
  if (e.target.value === 'custom') return;
  state.rangeSec = +e.target.value; state.from = state.to = null; refresh();
});
$('refresh').addEventListener('click', refresh);
$('search').addEventListener('input', (e) => { state.search = e.target.value; renderFlame(); renderTop(); saveHash(); });
$('reset-zoom').addEventListener('click', () => { state.zoom = null; renderFlame(); });
$('colour').addEventListener('change', (e) => { state.colour = e.target.value; renderFlame(); if (state.flame) renderLegend(state.flame); });
$('group-line').addEventListener('change', (e) => { state.groupLine = e.target.checked; refresh(); });
$('compare-mode').addEventListener('change', () => loadCompare().catch((e) => { $('cmp-info').textContent = e.message; }));
$('cmp-a').addEventListener('change', () => loadCompare());
$('cmp-b').addEventListener('change', () => loadCompare());
$('cmp-search').addEventListener('input', renderDiff);
let resizeTimer = null;
window.addEventListener('resize', () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => { drawTimeseries(); renderFlame(); renderDiff(); if (state.timeline && state.view === 'profiles') drawTimeline(); }, 150);
});

loadHash();
$('search').value = state.search;
$('tagfilter').value = state.tags;
if (state.from != null) { $('range').querySelector('option[value=custom]').hidden = false; $('range').value = 'custom'; } else $('range').value = String(state.rangeSec);
setView(state.view);
