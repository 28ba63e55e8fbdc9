// sluice dashboard: draws each tile of /api/tiles from /api/tiles/<id>, refreshing 5 seconds
// after the previous refresh ended, without reloading the page. Times are shown in the browser's zone, with UTC on hover.
'use strict';

const REFRESH_MS = 5000;
const RANGES = { '5m': 3e5, '15m': 9e5, '1h': 3.6e6, '6h': 2.16e7, '24h': 8.64e7, '7d': 6.048e8, all: null };

// Exposed for the browser test: the tiles, the last data of each, which have drawn once.
const sluice = { tiles: [], data: {}, drawn: new Set(), failed: {}, refreshes: 0, ready: false };
window.sluice = sluice;

const charts = new Map();
let inFlight = false;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, attrs || {});
  for (const c of children) node.append(c);
  return node;
}

function params() {
  const span = RANGES[document.getElementById('range').value];
  const now = Date.now();
  // "everything" reaches a day ahead: producers' clocks may run ahead of this one.
  const from = span === null ? 0 : now - span;
  const to = span === null ? now + 8.64e7 : now;
  const key = document.getElementById('key').value.trim();
  return new URLSearchParams({ from: String(from), to: String(to), key });
}

function pad(n) { return String(n).padStart(2, '0'); }
function localTime(ms) {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}
function utcTime(ms) { return new Date(ms).toISOString().replace('.000Z', 'Z'); }
function fmt(v, type) {
  if (v === null || v === undefined) return '';
  if (type === 'time') return localTime(v);
  if (typeof v === 'number') return Number.isInteger(v) ? v.toLocaleString() : v.toLocaleString(undefined, { maximumFractionDigits: 4 });
  return String(v);
}

function column(columns, name) {
  const c = columns.find((c) => c.name === name);
  if (!c) throw new Error(`the query has no column ${name} (columns: ${columns.map((c) => c.name).join(', ')})`);
  return c;
}

// Rows grouped by the series column (one group when the tile has none), in first-seen order.
function groups(columns, series) {
  const n = columns.length ? columns[0].values.length : 0;
  const out = new Map();
  const by = series ? column(columns, series).values : null;
  for (let i = 0; i < n; i++) {
    const g = by ? String(by[i]) : '';
    if (!out.has(g)) out.set(g, []);
    out.get(g).push(i);
  }
  return out;
}

function tooltipHeader(x, xType) {
  return xType === 'time' ? `${localTime(x)} <span style="color:#888">(${utcTime(x)})</span>` : String(x);
}

function markerSeries(tile, markers) {
  if (!markers || !markers.length || !markers[0].values.length) return [];
  const get = (name) => column(markers, name).values;
  const xs = get(tile.x), ys = get('value'), keys = get(tile.series || 'key');
  const [score, detector, direction, baseline, spread] = ['score', 'detector', 'direction', 'baseline', 'spread'].map(get);
  // What the detector compared: the series' own value, or a transform of it (a return).
  const detected = markers.some((c) => c.name === 'detected_value') ? get('detected_value') : ys;
  const data = xs.map((x, i) => ({
    value: [x, ys[i]],
    evidence: { key: keys[i], score: score[i], detector: detector[i], direction: direction[i], detected: detected[i], baseline: baseline[i], spread: spread[i] },
  }));
  return [{
    name: 'anomalies', type: 'scatter', data, symbol: 'pin', symbolSize: 22, z: 10,
    itemStyle: { color: '#c0392b' },
    tooltip: {
      trigger: 'item',
      formatter: (p) => {
        const e = p.data.evidence;
        return `${tooltipHeader(p.data.value[0], 'time')}<br><b>${e.key}</b>: ${e.direction} (${e.detector})<br>`
          + `value ${fmt(p.data.value[1])}<br>the detector saw ${fmt(e.detected)} against baseline ${fmt(e.baseline)}, spread ${fmt(e.spread)}<br>score ${fmt(e.score)}`;
      },
    },
  }];
}

function axisOption(tile, columns, series) {
  const xCol = column(columns, tile.x);
  const timeAxis = xCol.type === 'time';
  const base = {
    animation: false,
    grid: { left: 8, right: 16, top: 30, bottom: 8, containLabel: true },
    legend: { type: 'scroll', top: 0 },
    tooltip: {
      trigger: 'axis',
      formatter: (ps) => {
        const list = Array.isArray(ps) ? ps : [ps];
        const x = timeAxis ? list[0].value[0] : list[0].name;
        return tooltipHeader(x, timeAxis ? 'time' : 'string') + '<br>'
          + list.map((p) => `${p.marker}${p.seriesName}: ${fmt(timeAxis ? p.value[1] : p.value)}`).join('<br>');
      },
    },
    // A single instant on a time axis would stretch it over days: show a minute either side.
    xAxis: timeAxis ? (() => {
      const xs = xCol.values.filter((v) => v !== null);
      const lo = Math.min(...xs), hi = Math.max(...xs);
      return lo === hi ? { type: 'time', min: lo - 60000, max: hi + 60000 } : { type: 'time' };
    })() : (() => {
      const data = [...new Set(xCol.values.map(String))];
      return { type: 'category', data, axisLabel: { interval: 0, rotate: data.length > 6 ? 30 : 0 } };
    })(),
    yAxis: { type: 'value', scale: true },
    series,
  };
  return base;
}

function xySeries(tile, columns, type) {
  const xCol = column(columns, tile.x);
  const timeAxis = xCol.type === 'time';
  const categories = timeAxis ? null : [...new Set(xCol.values.map(String))];
  const out = [];
  for (const [g, rows] of groups(columns, tile.series)) {
    for (const y of tile.y) {
      const yv = column(columns, y).values;
      const name = tile.series ? (tile.y.length > 1 ? `${g} ${y}` : g) : y;
      let data;
      if (timeAxis) {
        data = rows.map((i) => [xCol.values[i], yv[i]]);
      } else {
        const at = new Map(rows.map((i) => [String(xCol.values[i]), yv[i]]));
        data = categories.map((c) => (at.has(c) ? at.get(c) : null));
      }
      // Points are drawn only where there are few: a single minute must still show.
      out.push({ name, type, data, showSymbol: data.length < 24, connectNulls: false });
    }
  }
  return out;
}

function candlestick(tile, columns) {
  const keys = [...groups(columns, tile.series).keys()];
  const wanted = document.getElementById('key').value.trim();
  const key = keys.includes(wanted) ? wanted : keys[0];
  const rows = groups(columns, tile.series).get(key) || [];
  const x = column(columns, tile.x).values;
  const [o, c, l, h] = tile.y.map((y) => column(columns, y).values);
  const series = [{ name: key || 'candles', type: 'candlestick', data: rows.map((i) => [x[i], o[i], c[i], l[i], h[i]]) }];
  for (const line of tile.lines || []) {
    const v = column(columns, line).values;
    series.push({ name: line, type: 'line', showSymbol: false, data: rows.map((i) => [x[i], v[i]]) });
  }
  const option = axisOption(tile, columns, series);
  option.tooltip.formatter = (ps) => {
    const list = Array.isArray(ps) ? ps : [ps];
    return tooltipHeader(list[0].value[0], 'time') + '<br>' + list.map((p) => (p.seriesType === 'candlestick'
      ? `${p.marker}${p.seriesName}: open ${fmt(p.value[1])} close ${fmt(p.value[2])} low ${fmt(p.value[3])} high ${fmt(p.value[4])}`
      : `${p.marker}${p.seriesName}: ${fmt(p.value[1])}`)).join('<br>');
  };
  option.title = { text: keys.length > 1 ? `${key} (type a key to see another of ${keys.length})` : '', right: 0, top: 0, textStyle: { fontSize: 11, color: '#66707c' } };
  option.legend.left = 0;
  return option;
}

function chartOption(tile, data) {
  const { columns } = data;
  if (!columns.length || !columns[0].values.length) return null;
  switch (tile.chart) {
    case 'line':
    case 'bar': {
      const series = xySeries(tile, columns, tile.chart);
      if (tile.chart === 'bar' && column(columns, tile.x).type === 'time') series.forEach((s) => { s.stack = 'total'; });
      return axisOption(tile, columns, series.concat(markerSeries(tile, data.markers)));
    }
    case 'pie':
    case 'funnel': {
      const names = column(columns, tile.x).values, values = column(columns, tile.y[0]).values;
      return {
        animation: false,
        tooltip: { trigger: 'item', formatter: (p) => `${p.name}: ${fmt(p.value)}` },
        series: [{ type: tile.chart, name: tile.y[0], data: names.map((n, i) => ({ name: String(n), value: values[i] })),
                   ...(tile.chart === 'funnel'
                   ? { sort: 'descending', left: '10%', width: '80%', label: { position: 'inside', formatter: '{b}: {c}' } }
                   : { radius: ['30%', '70%'] }) }],
      };
    }
    case 'candlestick':
      return candlestick(tile, columns);
    default:
      throw new Error(`unknown chart ${tile.chart}`);
  }
}

function renderTable(body, columns) {
  const n = columns.length ? columns[0].values.length : 0;
  if (!n) { body.replaceChildren(el('div', { className: 'empty', textContent: 'no rows in this range' })); return; }
  const head = el('tr', {}, ...columns.map((c) => el('th', { textContent: c.name })));
  const rows = [];
  for (let i = 0; i < n; i++) {
    rows.push(el('tr', {}, ...columns.map((c) => {
      const td = el('td', { textContent: fmt(c.values[i], c.type) });
      if (c.type === 'time' && c.values[i] !== null) td.title = utcTime(c.values[i]);
      return td;
    })));
  }
  body.replaceChildren(el('div', { className: 'table-wrap' }, el('table', {}, el('thead', {}, head), el('tbody', {}, ...rows))));
}

function draw(tile, data) {
  const section = document.getElementById(`tile-${tile.id}`);
  const body = section.querySelector('.body');
  section.querySelector('.error').textContent = '';
  if (tile.chart === 'table') { renderTable(body, data.columns); return; }
  if (tile.chart === 'stat') {
    const values = data.columns.length ? column(data.columns, tile.y[0]).values : [];
    const value = values.length ? values[0] : null;
    body.replaceChildren(el('div', { className: 'stat-value', textContent: value === null ? '–' : fmt(value) }));
    body.firstChild.dataset.value = value === null ? '' : String(value);
    return;
  }
  const option = chartOption(tile, data);
  let chart = charts.get(tile.id);
  if (!option) {
    if (chart) { chart.dispose(); charts.delete(tile.id); }
    body.replaceChildren(el('div', { className: 'empty', textContent: 'no rows in this range' }));
    return;
  }
  if (!chart) {
    body.replaceChildren();
    chart = echarts.init(body);
    charts.set(tile.id, chart);
  }
  chart.setOption(option, { notMerge: true });
}

async function refreshTile(tile, query) {
  try {
    const response = await fetch(`/api/tiles/${encodeURIComponent(tile.id)}?${query}`);
    const text = await response.text();
    let data;
    try { data = JSON.parse(text); } catch { throw new Error(`${response.status}: ${text.slice(0, 300)}`); }
    if (!response.ok) throw new Error(data.error || response.statusText);
    sluice.data[tile.id] = data;
    draw(tile, data);
    delete sluice.failed[tile.id];
  } catch (e) {
    sluice.failed[tile.id] = String(e.message || e);
    const section = document.getElementById(`tile-${tile.id}`);
    if (section) section.querySelector('.error').textContent = sluice.failed[tile.id];
    console.error(`tile ${tile.id}: ${sluice.failed[tile.id]}`);
  }
  sluice.drawn.add(tile.id);
}

async function refresh() {
  if (inFlight) return;
  inFlight = true;
  const status = document.getElementById('status');
  const query = params().toString();
  const started = performance.now();
  await Promise.all(sluice.tiles.map((t) => refreshTile(t, query)));
  sluice.refreshes += 1;
  sluice.ready = sluice.drawn.size === sluice.tiles.length;
  sluice.lastRefreshMs = performance.now() - started;
  const failed = Object.keys(sluice.failed).length;
  status.className = failed ? 'bad' : '';
  status.textContent = `${failed ? `${failed} tile(s) failed · ` : ''}updated ${localTime(Date.now())} in ${Math.round(sluice.lastRefreshMs)} ms`;
  inFlight = false;
}

// The range and key live in the URL's fragment (#range=1h&key=AAPL): a view can be bookmarked.
function readHash() {
  const state = new URLSearchParams(window.location.hash.slice(1));
  const range = state.get('range');
  if (range && range in RANGES) document.getElementById('range').value = range;
  if (state.has('key')) document.getElementById('key').value = state.get('key');
}
function writeHash() {
  const state = new URLSearchParams({ range: document.getElementById('range').value });
  const key = document.getElementById('key').value.trim();
  if (key) state.set('key', key);
  history.replaceState(null, '', `#${state}`);
}
function changed() { writeHash(); refresh(); }

async function start() {
  readHash();
  const response = await fetch('/api/tiles');
  sluice.tiles = await response.json();
  const main = document.getElementById('tiles');
  for (const tile of sluice.tiles) {
    main.append(el('section', { id: `tile-${tile.id}`, className: `tile ${tile.chart}` },
      el('h2', { textContent: tile.title, title: tile.sql }),
      el('div', { className: 'error' }),
      el('div', { className: 'body' })));
  }
  window.addEventListener('resize', () => charts.forEach((c) => c.resize()));
  document.getElementById('range').addEventListener('change', changed);
  document.getElementById('key').addEventListener('change', changed);
  window.addEventListener('hashchange', () => { readHash(); refresh(); });
  await refresh();
  sluice.firstPaintMs = performance.now();
  // The next refresh starts REFRESH_MS after the last one ended: a slow lake is queried less
  // often instead of queueing work.
  const again = async () => { await refresh(); setTimeout(again, REFRESH_MS); };
  setTimeout(again, REFRESH_MS);
}

start().catch((e) => {
  document.getElementById('status').textContent = `cannot load the tiles: ${e.message || e}`;
  console.error(e);
});
