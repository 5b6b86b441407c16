// UI tests in headless Chromium (Debian's /usr/bin/chromium) via playwright-core.
// Usage: node ui.test.mjs --url http://127.0.0.1:PORT --empty-url http://127.0.0.1:PORT2 --service NAME --out DIR
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? acc.concat([[a.slice(2), all[i + 1]]]) : acc), []));
const url = args.url;
const service = args.service || 'e2e-shop';
const out = args.out || 'test-artifacts/agent-ui';
fs.mkdirSync(out, { recursive: true });

let failures = 0;
const ok = (cond, msg) => { console.log((cond ? 'ok: ' : 'FAIL: ') + msg); if (!cond) failures++; };
const shot = (page, name) => page.screenshot({ path: path.join(out, name + '.png'), fullPage: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const page = await browser.newPage({ viewport: { width: 1500, height: 1000 } });
const errors = [];
page.on('pageerror', (e) => errors.push(String(e)));
page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });

// Rect of a flame-graph node by name (canvas hit list exposed on the element).
const nodeRect = (canvasId, name) => page.evaluate(([id, n]) => {
  const c = document.getElementById(id);
  const r = c.getBoundingClientRect();
  const hit = (c._rects || []).filter((q) => q.n.name === n).sort((a, b) => b.w - a.w)[0];
  return hit ? { x: r.left + hit.x + Math.min(hit.w / 2, 40), y: r.top + hit.y + hit.h / 2, w: hit.w, canvasW: c.clientWidth } : null;
}, [canvasId, name]);

try {
  // ---- empty state
  if (args['empty-url']) {
    await page.goto(args['empty-url']);
    await page.waitForSelector('#empty:not([hidden])', { timeout: 10000 });
    const txt = await page.textContent('#empty');
    ok(txt.includes('DD_PROFILING_ENABLED=true') && txt.includes('DD_TRACE_AGENT_URL'), 'empty state explains how to send profiles');
    await shot(page, '00-empty-state');
  }

  // ---- service picker + flame graph
  await page.goto(url);
  await page.waitForFunction((s) => [...document.querySelectorAll('#service option')].some((o) => o.value === s), service, { timeout: 15000 });
  await page.selectOption('#service', service);
  await page.waitForFunction(() => /uploads/.test(document.getElementById('flame-info').textContent), null, { timeout: 15000 });
  await page.selectOption('#type', 'cpu-time');
  await page.waitForFunction(() => /uploads/.test(document.getElementById('flame-info').textContent) && (document.getElementById('flame')._data || {}).type === 'cpu-time', null, { timeout: 15000 });
  const info = await page.textContent('#flame-info');
  ok(/\d+ uploads/.test(info), `flame graph loaded (${info})`);
  const topRows = await page.$$eval('#top tbody tr', (rs) => rs.map((r) => r.dataset.name));
  ok(topRows.includes('compute_primes'), 'top table lists compute_primes');
  const legend = await page.textContent('#legend');
  ok(legend.includes('your code') && legend.includes('standard library'), 'provenance colour legend shown');
  await shot(page, '01-flamegraph-cpu');

  // ---- tooltip
  const main = await nodeRect('flame', 'compute_primes');
  ok(!!main, 'compute_primes drawn in the flame graph');
  await page.mouse.move(main.x, main.y);
  await page.waitForSelector('#tooltip:not([hidden])');
  const tip = await page.textContent('#tooltip');
  ok(tip.includes('compute_primes') && tip.includes('workload.py:') && tip.includes('%') && tip.includes('self'), 'tooltip shows self/total/%/file:line');
  await shot(page, '02-tooltip');

  // ---- click to zoom
  await page.mouse.click(main.x, main.y);
  const zoomed = await nodeRect('flame', 'compute_primes');
  ok(zoomed && Math.abs(zoomed.w - zoomed.canvasW) < 2, 'clicking a frame zooms it to full width');
  await shot(page, '03-zoomed');
  await page.click('#reset-zoom');
  const unzoomed = await nodeRect('flame', 'compute_primes');
  ok(unzoomed && unzoomed.w < unzoomed.canvasW - 2, 'reset zoom restores the full graph');

  // ---- search
  await page.fill('#search', 'render_json');
  await page.waitForFunction(() => +(document.getElementById('flame-info').dataset.matches || 0) > 0);
  const rows = await page.$$eval('#top tbody tr', (rs) => rs.map((r) => r.dataset.name));
  ok(rows.length >= 1 && rows.every((n) => /render_json/i.test(n)), `search highlights and filters the table (${rows.join(',')})`);
  await shot(page, '04-search');
  await page.fill('#search', '');

  // ---- type selector
  await page.selectOption('#type', 'wall-time');
  await page.waitForFunction(() => (document.getElementById('flame')._data || {}).type === 'wall-time');
  ok(!!(await nodeRect('flame', 'idle_waiter')), 'wall-time shows the idle thread');
  await page.selectOption('#type', 'alloc-space');
  await page.waitForFunction(() => (document.getElementById('flame')._data || {}).type === 'alloc-space');
  ok(!!(await nodeRect('flame', 'allocate_buffers')), 'alloc-space shows allocate_buffers');
  await shot(page, '05-alloc-space');
  await page.selectOption('#type', 'cpu-time');
  await page.waitForFunction(() => (document.getElementById('flame')._data || {}).type === 'cpu-time');

  // ---- version filter
  await page.selectOption('#version', '2.0');
  await page.waitForFunction(() => location.hash.includes('version=2.0') && /uploads/.test(document.getElementById('flame-info').textContent));
  ok(true, 'version filter applied');
  await page.selectOption('#version', '');

  // ---- time range drag on the totals chart
  const ts = await page.$('#timeseries');
  const box = await ts.boundingBox();
  await page.mouse.move(box.x + box.width * 0.5, box.y + 40);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width * 0.995, box.y + 40, { steps: 5 });
  await page.mouse.up();
  await page.waitForFunction(() => document.getElementById('range').value === 'custom' && location.hash.includes('from='));
  ok(true, 'dragging on the totals chart selects a custom range');
  await page.waitForFunction(() => /uploads/.test(document.getElementById('flame-info').textContent));
  await shot(page, '06-range-selected');
  await page.dblclick('#timeseries');
  await page.waitForFunction(() => document.getElementById('range').value !== 'custom');

  // ---- compare two versions
  await page.click('#tab-compare');
  await page.waitForFunction(() => /baseline/.test(document.getElementById('cmp-info').textContent), null, { timeout: 15000 });
  await page.selectOption('#cmp-a', '1.0');
  await page.selectOption('#cmp-b', '2.0');
  await page.waitForFunction(() => /baseline/.test(document.getElementById('cmp-info').textContent) && document.getElementById('diff')._data);
  const slow = await nodeRect('diff', 'slow_path');
  ok(!!slow, 'diff flame graph drawn with slow_path');
  await page.mouse.move(slow.x, slow.y);
  const dtip = await page.textContent('#tooltip');
  ok(dtip.includes('baseline') && dtip.includes('comparison'), 'diff tooltip shows baseline vs comparison share');
  await shot(page, '07-compare-versions');
  await page.selectOption('#compare-mode', 'halves');
  await page.waitForFunction(() => /baseline/.test(document.getElementById('cmp-info').textContent));
  await shot(page, '08-compare-ranges');

  // ---- profile list + single profile timeline
  await page.click('#tab-profiles');
  await page.waitForSelector('#profiles-table tbody tr[data-id]', { timeout: 15000 });
  const n = await page.$$eval('#profiles-table tbody tr[data-id]', (r) => r.length);
  ok(n >= 4, `profile list shows ${n} uploads`);
  // a mid-run upload (the last one of a process is short and has few threads)
  await page.click(`#profiles-table tbody tr[data-id]:nth-child(${Math.ceil(n / 2)})`);
  await page.waitForSelector('#single-body:not([hidden])');
  await page.waitForFunction(() => /threads/.test(document.getElementById('timeline-info').textContent));
  const lanes = await page.textContent('#timeline-info');
  ok(/\d+ threads/.test(lanes), `single-profile timeline (${lanes})`);
  const href = await page.getAttribute('#single-download', 'href');
  const resp = await page.request.get(new URL(href, url).toString());
  const body = await resp.body();
  ok(resp.ok() && body[0] === 0x1f && body[1] === 0x8b, 'download pprof returns gzip');
  await shot(page, '09-single-profile');

  ok(errors.length === 0, `no page errors ${errors.slice(0, 3).join(' | ')}`);
} catch (e) {
  failures++;
  console.log('FAIL: ' + (e && e.stack || e));
  await shot(page, 'zz-failure').catch(() => {});
} finally {
  await browser.close();
}
console.log(failures ? `UI tests: ${failures} failure(s)` : 'UI tests: all passed');
process.exit(failures ? 1 : 0);
