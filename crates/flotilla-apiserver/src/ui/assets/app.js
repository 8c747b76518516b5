// Flotilla dashboard: a hand-written single-page app. Every request goes to /ui/api/...,
// which the hub forwards to its Kubernetes API as the signed-in user (RBAC decides).
'use strict';

const API = '/ui/api';
const CSRF = { 'X-Requested-With': 'flotilla-ui' };
const APPS = '/apis/core.oam.dev/v1beta1';
const CLUSTERS = '/apis/cluster.open-cluster-management.io/v1/managedclusters';
const GATEWAY = '/apis/cluster.core.oam.dev/v1alpha1/clustergateways';
const COLORS = ['#2f6fde', '#1f8a4c', '#c33b32', '#b7791f', '#7b4bd1', '#138a8a', '#d1468f'];

class ApiError extends Error {
  constructor(code, message, reason) {
    super(message);
    this.code = code;
    this.reason = reason || '';
  }
}

// ---- DOM helpers (text only: nothing from the API is ever parsed as HTML) ----

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'onclick' || k === 'onchange' || k === 'onsubmit') node[k] = v;
    else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function table(headers, rows) {
  return el('table', {},
    el('thead', {}, el('tr', {}, headers.map((h) => el('th', {}, h)))),
    el('tbody', {}, rows.length ? rows.map((r) => el('tr', {}, r.map((c) => el('td', {}, c))))
      : el('tr', {}, el('td', { colspan: headers.length, class: 'muted' }, 'None'))));
}

function banner(text, kind) {
  const b = document.getElementById('banner');
  b.textContent = text || '';
  b.className = kind || '';
  b.hidden = !text;
}

function showError(e) {
  if (e instanceof ApiError && e.code === 401) return;
  if (e instanceof ApiError && e.code === 403) banner('Forbidden: ' + e.message);
  else banner('Error: ' + (e && e.message ? e.message : String(e)));
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---- API access ----

async function api(method, path, body, contentType) {
  const opts = { method, headers: { ...CSRF }, credentials: 'same-origin' };
  if (body !== undefined) {
    opts.body = typeof body === 'string' ? body : JSON.stringify(body);
    opts.headers['Content-Type'] = contentType || 'application/json';
  }
  const r = await fetch(API + path, opts);
  const text = await r.text();
  let data = text;
  try { data = JSON.parse(text); } catch (_) { /* plain text */ }
  if (r.status === 401) {
    signedOut('Your session has ended (the token expired or was revoked): sign in again.');
    throw new ApiError(401, 'Unauthorized');
  }
  if (!r.ok) {
    const message = data && data.message ? data.message : String(text).trim();
    throw new ApiError(r.status, message, data && data.reason);
  }
  return data;
}

const get = (path) => api('GET', path);
const mergePatch = (path, patch) => api('PATCH', path, patch, 'application/merge-patch+json');

// The current page's watch streams, stopped when the page changes.
let pageWatches = [];

function stopWatches() {
  for (const w of pageWatches) w.abort();
  pageWatches = [];
}

// Watches `path` (a collection) from `resourceVersion`, calling onChange on every event;
// reconnects on the stream's end and calls onChange (to relist) after an error.
function watch(path, resourceVersion, onChange) {
  const ctl = new AbortController();
  pageWatches.push(ctl);
  (async () => {
    let rv = resourceVersion;
    while (!ctl.signal.aborted) {
      try {
        const sep = path.includes('?') ? '&' : '?';
        const url = API + path + sep + 'watch=1&allowWatchBookmarks=true&resourceVersion=' + encodeURIComponent(rv || '');
        const r = await fetch(url, { headers: CSRF, signal: ctl.signal, credentials: 'same-origin' });
        if (r.status === 401) { signedOut('Your session has ended: sign in again.'); return; }
        if (!r.ok) { await sleep(2000); rv = ''; onChange(); continue; }
        rv = await readEvents(r.body.getReader(), rv, onChange);
      } catch (_) {
        if (ctl.signal.aborted) return;
      }
      await sleep(500);
    }
  })();
}

async function readEvents(reader, rv, onChange) {
  const decoder = new TextDecoder();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return rv;
    buf += decoder.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i).trim();
      buf = buf.slice(i + 1);
      if (!line) continue;
      const ev = JSON.parse(line);
      if (ev.type === 'ERROR') { onChange(); return ''; }
      const next = ev.object && ev.object.metadata && ev.object.metadata.resourceVersion;
      if (next) rv = next;
      if (ev.type !== 'BOOKMARK') onChange();
    }
  }
}

// Runs `fn` at most once per 300 ms, the last call winning.
function debounce(fn) {
  let timer = null;
  return () => { clearTimeout(timer); timer = setTimeout(fn, 300); };
}

// ---- session ----

function signedOut(message) {
  stopWatches();
  document.getElementById('nav').hidden = true;
  document.getElementById('signout').hidden = true;
  document.getElementById('who').textContent = '';
  document.getElementById('main').replaceChildren();
  document.getElementById('signin').hidden = false;
  document.getElementById('signin-message').textContent = message || '';
  banner('');
}

function signedIn(username) {
  document.getElementById('signin').hidden = true;
  document.getElementById('nav').hidden = false;
  document.getElementById('signout').hidden = false;
  document.getElementById('who').textContent = username;
  route();
}

async function signIn(event) {
  event.preventDefault();
  const input = document.getElementById('token');
  const r = await fetch('/ui/login', {
    method: 'POST', credentials: 'same-origin',
    headers: { ...CSRF, 'Content-Type': 'application/json' },
    body: JSON.stringify({ token: input.value }),
  });
  input.value = '';
  const data = await r.json().catch(() => ({}));
  if (!r.ok) {
    signedOut(data.message || 'Sign-in failed (' + r.status + ')');
    return;
  }
  signedIn(data.username);
}

async function signOut() {
  await fetch('/ui/logout', { method: 'POST', headers: CSRF, credentials: 'same-origin' });
  signedOut('Signed out.');
}

// ---- pages ----

const pages = [
  [/^#\/overview$/, overviewPage],
  [/^#\/clusters$/, clustersPage],
  [/^#\/applications$/, applicationsPage],
  [/^#\/app\/([^/]+)\/([^/]+)$/, applicationPage],
  [/^#\/resources$/, resourcesPage],
];

function route() {
  if (document.getElementById('nav').hidden) return;
  stopWatches();
  banner('');
  const hash = location.hash || '#/clusters';
  for (const a of document.querySelectorAll('nav a')) {
    a.classList.toggle('active', hash.startsWith(a.getAttribute('href')));
  }
  for (const [re, page] of pages) {
    const m = hash.match(re);
    if (m) { page(...m.slice(1).map(decodeURIComponent)).catch(showError); return; }
  }
  location.hash = '#/clusters';
}

function mount(...children) {
  document.getElementById('main').replaceChildren(...children);
}

// Renders a page with `draw` (which returns [nodes, resourceVersion]) and keeps it live
// through a watch on `watchPath`.
async function live(drawFn, watchPaths) {
  const redraw = async () => {
    try {
      const [nodes] = await drawFn();
      mount(...nodes);
    } catch (e) { showError(e); }
  };
  const [nodes, rvs] = await drawFn();
  mount(...nodes);
  const again = debounce(redraw);
  watchPaths.forEach((p, i) => watch(p, rvs[i], again));
}

function condition(obj, type) {
  return ((obj.status || {}).conditions || []).find((c) => c.type === type);
}

function phaseClass(phase) {
  if (['running', 'succeeded', 'True', 'true'].includes(String(phase))) return 'ok';
  if (['workflowFailed', 'unhealthy', 'failed', 'False', 'workflowTerminated'].includes(String(phase))) return 'bad';
  return 'warn';
}

function appClusters(app) {
  const names = new Set(((app.status || {}).services || []).map((s) => s.cluster));
  return [...names].sort();
}

function appHealthy(app) {
  const services = (app.status || {}).services || [];
  return services.length > 0 && services.every((s) => s.healthy && (s.traits || []).every((t) => t.healthy));
}

// Overview: fleet metrics of the last hour.
async function overviewPage() {
  await live(async () => {
    const h = await get('/metrics/clusters/history').catch((e) => {
      if (e.code === 404) return null;
      throw e;
    });
    if (!h) return [[el('h1', {}, 'Overview'), el('p', { class: 'muted' }, 'No fleet metrics yet.')], []];
    return [[el('h1', {}, 'Overview'), overviewCards(h)], []];
  }, []);
  const timer = setInterval(() => { if (location.hash === '#/overview') route(); }, 5000);
  pageWatches.push({ abort: () => clearInterval(timer) });
}

function overviewCards(h) {
  const clusters = Object.keys(h.readyReplicas || {}).sort();
  const series = clusters.map((c, i) => ({ name: c, color: COLORS[i % COLORS.length], points: h.readyReplicas[c] }));
  const rollouts = (h.rollouts || []).slice(-12);
  return el('div', { class: 'cards' },
    el('div', { class: 'card' }, el('h2', {}, 'Ready replicas per cluster (last hour)'),
      lineChart(series, 520, 220),
      el('div', { class: 'legend' }, series.map((s) => el('span', {}, swatch(s.color), s.name)))),
    el('div', { class: 'card' }, el('h2', {}, 'Application rollout durations (seconds)'),
      barChart(rollouts.map((r) => ({ label: r.namespace + '/' + r.name + ' ' + r.revision, value: r.seconds })), 520, 220)));
}

// A colour square (set through the CSSOM: the page's CSP allows no inline style attributes).
function swatch(color) {
  const i = el('i', {});
  i.style.background = color;
  return i;
}

const SVG = 'http://www.w3.org/2000/svg';

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function lineChart(series, w, h) {
  const pad = 34;
  const all = series.flatMap((s) => s.points);
  const now = Date.now() / 1000;
  // The last hour, or less while the hub has not been up that long.
  const first = Math.min(now - 60, ...all.map((p) => p[0]));
  const t0 = Math.max(now - 3600, first);
  const span = now - t0;
  const maxY = Math.max(1, ...all.map((p) => p[1]));
  const x = (t) => pad + ((t - t0) / span) * (w - pad - 8);
  const y = (v) => h - pad + 10 - (v / maxY) * (h - pad - 10);
  const root = svg('svg', { width: w, height: h, viewBox: `0 0 ${w} ${h}`, role: 'img' });
  root.append(svg('line', { x1: pad, y1: y(0), x2: w - 8, y2: y(0), stroke: '#b9c0cc' }));
  root.append(svg('line', { x1: pad, y1: y(0), x2: pad, y2: y(maxY), stroke: '#b9c0cc' }));
  root.append(svg('text', { x: 4, y: y(maxY) + 4 }, maxY), svg('text', { x: 4, y: y(0) + 4 }, 0));
  root.append(svg('text', { x: pad, y: h - 4 }, `-${Math.round(span / 60)} min`), svg('text', { x: w - 40, y: h - 4 }, 'now'));
  for (const s of series) {
    const pts = s.points.filter((p) => p[0] >= t0).map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`);
    if (pts.length === 1) pts.unshift(`${pad},${pts[0].split(',')[1]}`);
    if (pts.length) root.append(svg('polyline', { points: pts.join(' '), fill: 'none', stroke: s.color, 'stroke-width': 2 }));
  }
  return root;
}

function barChart(bars, w, h) {
  const root = svg('svg', { width: w, height: h, viewBox: `0 0 ${w} ${h}`, role: 'img' });
  if (!bars.length) { root.append(svg('text', { x: 10, y: 20 }, 'No rollouts finished in the last hour.')); return root; }
  const max = Math.max(1, ...bars.map((b) => b.value));
  const rowH = Math.min(18, (h - 10) / bars.length);
  bars.forEach((b, i) => {
    const yy = 5 + i * rowH;
    const len = (b.value / max) * (w - 260);
    root.append(svg('text', { x: 2, y: yy + rowH * 0.7 }, b.label.slice(0, 34)));
    root.append(svg('rect', { x: 220, y: yy + 2, width: Math.max(1, len), height: rowH - 4, fill: COLORS[0] }));
    root.append(svg('text', { x: 224 + len, y: yy + rowH * 0.7 }, b.value.toFixed(1)));
  });
  return root;
}

// Clusters: name, availability, labels (add/remove), Kubernetes version, app count.
async function clustersPage() {
  const versions = {};
  await live(async () => {
    const [clusters, apps] = await Promise.all([get(CLUSTERS), get(APPS + '/applications')]);
    await Promise.all(clusters.items.map(async (c) => {
      const name = c.metadata.name;
      if (versions[name]) return;
      versions[name] = await get(GATEWAY + '/' + encodeURIComponent(name) + '/proxy/version')
        .then((v) => v.gitVersion || '—').catch(() => '—');
    }));
    const rows = clusters.items.map((c) => clusterRow(c, apps.items, versions));
    return [[el('h1', {}, 'Clusters'),
      table(['Name', 'Available', 'Labels', 'Kubernetes version', 'Applications'], rows)],
    [clusters.metadata.resourceVersion, apps.metadata.resourceVersion]];
  }, [CLUSTERS, APPS + '/applications']);
}

function clusterRow(c, apps, versions) {
  const name = c.metadata.name;
  const available = condition(c, 'ManagedClusterConditionAvailable');
  const state = available ? available.status : 'Unknown';
  const count = apps.filter((a) => appClusters(a).includes(name)).length;
  return [el('span', { 'data-cluster': name }, name), el('span', { class: phaseClass(state) }, state),
    labelEditor(name, c.metadata.labels || {}), versions[name] || '—', String(count)];
}

function labelEditor(cluster, labels) {
  const input = el('input', { placeholder: 'key=value', size: 14, 'aria-label': 'New label for ' + cluster });
  const chips = Object.entries(labels)
    .filter(([k]) => !k.startsWith('cluster.core.oam.dev/'))
    .map(([k, v]) => el('span', { class: 'chip' }, `${k}=${v}`,
      el('button', { title: 'Remove label ' + k, onclick: () => patchLabels(cluster, { [k]: null }) }, '×')));
  const add = () => {
    const [k, ...rest] = input.value.split('=');
    if (!k || !rest.length) { banner('A label is key=value'); return; }
    patchLabels(cluster, { [k.trim()]: rest.join('=').trim() });
  };
  return el('div', {}, chips, el('span', { class: 'row' }, input, el('button', { onclick: add }, 'Add label')));
}

// As `flotilla cluster labels add|remove`: the ManagedCluster and its credentials Secret.
async function patchLabels(cluster, labels) {
  const body = { metadata: { labels } };
  try {
    await mergePatch(CLUSTERS + '/' + encodeURIComponent(cluster), body);
    await mergePatch('/api/v1/namespaces/vela-system/secrets/' + encodeURIComponent(cluster), body)
      .catch((e) => { if (e.code !== 404) throw e; });
    banner('Updated the labels of cluster ' + cluster, 'info');
  } catch (e) { showError(e); }
}

// Applications: namespace, name, phase, health, clusters.
async function applicationsPage() {
  await live(async () => {
    const apps = await get(APPS + '/applications');
    const rows = apps.items.map((a) => {
      const phase = (a.status || {}).status || '';
      const healthy = appHealthy(a);
      return [a.metadata.namespace,
        el('a', { href: `#/app/${a.metadata.namespace}/${a.metadata.name}` }, a.metadata.name),
        el('span', { class: phaseClass(phase) }, phase),
        el('span', { class: healthy ? 'ok' : 'bad' }, healthy ? 'healthy' : 'unhealthy'),
        appClusters(a).join(', ')];
    });
    return [[el('h1', {}, 'Applications'), table(['Namespace', 'Name', 'Phase', 'Health', 'Clusters'], rows)],
      [apps.metadata.resourceVersion]];
  }, [APPS + '/applications']);
}

// One application: services, workflow, operations, revisions, resource tree, events.
async function applicationPage(ns, name) {
  const appsPath = `${APPS}/namespaces/${encodeURIComponent(ns)}/applications`;
  const state = { from: '', to: '' };
  await live(async () => {
    const [app, revisions, events] = await Promise.all([
      get(`${appsPath}/${encodeURIComponent(name)}`),
      get(`${APPS}/namespaces/${encodeURIComponent(ns)}/applicationrevisions`).catch(() => ({ items: [] })),
      get(`/api/v1/namespaces/${encodeURIComponent(ns)}/events`).catch(() => ({ items: [] })),
    ]);
    const status = app.status || {};
    const workflow = status.workflow || {};
    const nodes = [
      el('h1', {}, `Application ${ns}/${name} `, el('span', { id: 'app-phase', class: phaseClass(status.status) }, status.status || '')),
      operationButtons(ns, name),
      el('h2', {}, 'Services'), servicesTable(status.services || []),
      el('h2', {}, 'Workflow', workflow.message ? ` — ${workflow.message}` : ''), stepsTable(workflow.steps || []),
      el('h2', {}, 'Revisions'), revisionsView(app, revisions.items, state),
      el('h2', {}, 'Resources per cluster'), resourceTree(status.appliedResources || []),
      el('h2', {}, 'Events'), eventsTable(events.items, name),
    ];
    return [nodes, [app.metadata.resourceVersion]];
  }, [`${appsPath}?fieldSelector=metadata.name%3D${encodeURIComponent(name)}`]);
}

function operationButtons(ns, name) {
  const ops = ['Resume', 'Suspend', 'Terminate', 'Restart', 'Rollback'];
  return el('div', { class: 'actions' }, ops.map((op) => el('button', {
    id: 'op-' + op.toLowerCase(),
    onclick: () => runOperation(op.toLowerCase(), ns, name)
      .then(() => banner(`Successfully ${op.toLowerCase()} workflow: ${name}`, 'info'))
      .catch(showError),
  }, op)));
}

function servicesTable(services) {
  return table(['Cluster', 'Component', 'Workload', 'Healthy', 'Message', 'Traits'],
    services.map((s) => [s.cluster, s.name, s.workloadType || '',
      el('span', { class: s.healthy ? 'ok' : 'bad' }, String(s.healthy)), s.message || '',
      (s.traits || []).map((t) => el('div', {}, `${t.type}: ${t.message || (t.healthy ? 'healthy' : 'unhealthy')}`))]));
}

function stepsTable(steps) {
  const rows = [];
  const add = (s, depth) => {
    rows.push([el('span', { 'data-step': s.name }, '  '.repeat(depth) + s.name), s.type || '',
      el('span', { class: phaseClass(s.phase), 'data-step-phase': s.name }, s.phase || ''), s.message || '']);
    for (const sub of s.subSteps || []) add(sub, depth + 1);
  };
  steps.forEach((s) => add(s, 0));
  return table(['Step', 'Type', 'Phase', 'Message'], rows);
}

function revisionNumber(name) {
  const m = /-v(\d+)$/.exec(name || '');
  return m ? Number(m[1]) : 0;
}

function appRevisions(app, items) {
  const prefix = app.metadata.name + '-v';
  return items.filter((r) => /^\d+$/.test(r.metadata.name.slice(prefix.length)) && r.metadata.name.startsWith(prefix))
    .sort((a, b) => revisionNumber(a.metadata.name) - revisionNumber(b.metadata.name));
}

function revisionsView(app, items, state) {
  const revs = appRevisions(app, items);
  const rows = revs.map((r) => [r.metadata.name, r.metadata.creationTimestamp || '',
    (r.metadata.annotations || {})['app.oam.dev/publishVersion'] || '',
    r.status && r.status.succeeded ? el('span', { class: 'ok' }, 'succeeded') : '']);
  const names = revs.map((r) => r.metadata.name);
  if (!state.from && names.length > 1) { state.from = names[names.length - 2]; state.to = names[names.length - 1]; }
  const pick = (key) => el('select', { 'aria-label': key === 'from' ? 'Diff from' : 'Diff to', onchange: (e) => { state[key] = e.target.value; } },
    names.map((n) => { const o = el('option', { value: n }, n); o.selected = n === state[key]; return o; }));
  const out = el('pre', { class: 'diff', hidden: true });
  const show = () => {
    const a = revs.find((r) => r.metadata.name === state.from);
    const b = revs.find((r) => r.metadata.name === state.to);
    if (!a || !b) return;
    out.hidden = false;
    out.replaceChildren(...lineDiff(pretty(a.spec), pretty(b.spec)));
  };
  return el('div', {}, table(['Revision', 'Created', 'Publish version', 'Workflow'], rows),
    names.length > 1 ? el('div', { class: 'row' }, 'Diff', pick('from'), 'against', pick('to'), el('button', { onclick: show }, 'Show diff')) : null,
    out);
}

function pretty(v) {
  return JSON.stringify(v, null, 2).split('\n');
}

// A line diff (longest common subsequence) of two texts, as <span> lines.
function lineDiff(a, b) {
  const n = a.length;
  const m = b.length;
  const lcs = Array.from({ length: n + 1 }, () => new Uint16Array(m + 1));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  const out = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) { out.push(el('span', {}, '  ' + a[i] + '\n')); i++; j++; }
    else if (j < m && (i === n || lcs[i][j + 1] >= lcs[i + 1][j])) { out.push(el('span', { class: 'add' }, '+ ' + b[j])); j++; }
    else { out.push(el('span', { class: 'del' }, '- ' + a[i])); i++; }
  }
  return out;
}

function resourceTree(resources) {
  const byCluster = {};
  for (const r of resources) (byCluster[r.cluster] = byCluster[r.cluster] || []).push(r);
  const clusters = Object.keys(byCluster).sort();
  if (!clusters.length) return el('p', { class: 'muted' }, 'Nothing dispatched yet.');
  return el('ul', { class: 'tree' }, clusters.map((c) => el('li', {}, el('strong', {}, c),
    el('ul', { class: 'tree' }, byCluster[c].map((r) => el('li', {},
      `${r.kind} ${r.namespace ? r.namespace + '/' : ''}${r.name}`,
      el('span', { class: 'muted' }, r.component ? `  (component ${r.component}${r.trait ? ', trait ' + r.trait : ''})` : '')))))));
}

function eventsTable(events, name) {
  const mine = events.filter((e) => (e.involvedObject || {}).name === name || (e.regarding || {}).name === name)
    .sort((a, b) => String(a.lastTimestamp || a.eventTime || '').localeCompare(String(b.lastTimestamp || b.eventTime || '')));
  return table(['Last seen', 'Type', 'Reason', 'Message'],
    mine.map((e) => [e.lastTimestamp || e.eventTime || '', e.type || '', e.reason || '', e.message || e.note || '']));
}

// ---- workflow operations: the same changes `flotilla workflow ...` makes ----

function eachStep(steps, f) {
  for (const s of steps || []) { f(s); eachStep(s.subSteps, f); }
}

function statusPatch(app, workflow, phase) {
  const status = { workflow };
  if (phase) status.status = phase;
  return { metadata: { resourceVersion: app.metadata.resourceVersion }, status };
}

const operations = {
  suspend(app) {
    const wf = workflowOf(app);
    if (wf.terminated) throw new Error(`can not suspend workflow ${app.metadata.name}: the workflow is terminated`);
    if (wf.finished) throw new Error(`can not suspend workflow ${app.metadata.name}: the workflow has finished`);
    wf.suspend = true;
    eachStep(wf.steps, (s) => { if (s.phase === 'running') s.phase = 'suspending'; });
    return [statusPatch(app, wf, 'workflowSuspending'), true];
  },
  resume(app) {
    const wf = workflowOf(app);
    if (wf.terminated) throw new Error(`can not resume workflow ${app.metadata.name}: the workflow is terminated`);
    let suspending = false;
    eachStep(wf.steps, (s) => { if (s.phase === 'suspending') suspending = true; });
    if (!wf.suspend && !suspending) throw new Error(`workflow ${app.metadata.name} is not suspended`);
    wf.suspend = false;
    eachStep(wf.steps, (s) => { if (s.phase === 'suspending') { s.phase = 'running'; delete s.message; delete s.reason; } });
    return [statusPatch(app, wf, 'runningWorkflow'), true];
  },
  terminate(app) {
    const wf = workflowOf(app);
    if (wf.finished && !wf.terminated) throw new Error(`can not terminate workflow ${app.metadata.name}: the workflow has finished`);
    wf.terminated = true;
    wf.suspend = false;
    eachStep(wf.steps, (s) => { if (['running', 'suspending', 'pending'].includes(s.phase)) { s.phase = 'failed'; s.reason = 'Terminate'; } });
    return [statusPatch(app, wf, 'workflowTerminated'), true];
  },
  restart(app) {
    workflowOf(app);
    return [{ metadata: { resourceVersion: app.metadata.resourceVersion }, status: { workflow: null, status: 'runningWorkflow' } }, true];
  },
};

function workflowOf(app) {
  const wf = (app.status || {}).workflow;
  if (!wf) throw new Error(`the workflow of application ${app.metadata.name} has not started yet`);
  return JSON.parse(JSON.stringify(wf));
}

async function rollbackPatch(app, ns) {
  if ((app.status || {}).status === 'runningWorkflow') throw new Error(`can not rollback application ${app.metadata.name} while its workflow is running`);
  const list = await get(`${APPS}/namespaces/${encodeURIComponent(ns)}/applicationrevisions`);
  const current = ((app.status || {}).latestRevision || {}).name;
  const target = appRevisions(app, list.items).filter((r) => r.status && r.status.succeeded && r.metadata.name !== current).pop();
  if (!target) throw new Error(`application ${app.metadata.name} has no earlier revision whose workflow succeeded`);
  const patch = { metadata: { resourceVersion: app.metadata.resourceVersion }, spec: mergeDiff(app.spec, target.spec.application) };
  const version = (target.metadata.annotations || {})['app.oam.dev/publishVersion'];
  if (version) patch.metadata.annotations = { 'app.oam.dev/publishVersion': version };
  return [patch, false];
}

// The merge patch that turns `from` into `to`.
function mergeDiff(from, to) {
  const isObj = (v) => v && typeof v === 'object' && !Array.isArray(v);
  if (!isObj(from) || !isObj(to)) return to;
  const patch = {};
  for (const k of Object.keys(from)) if (!(k in to)) patch[k] = null;
  for (const [k, v] of Object.entries(to)) {
    if (JSON.stringify(from[k]) === JSON.stringify(v)) continue;
    patch[k] = isObj(from[k]) && isObj(v) ? mergeDiff(from[k], v) : v;
  }
  return patch;
}

async function runOperation(op, ns, name) {
  const path = `${APPS}/namespaces/${encodeURIComponent(ns)}/applications/${encodeURIComponent(name)}`;
  for (let attempt = 0; attempt < 10; attempt++) {
    const app = await get(path);
    const [patch, onStatus] = op === 'rollback' ? await rollbackPatch(app, ns) : operations[op](app);
    try {
      await mergePatch(onStatus ? path + '/status' : path, patch);
      return;
    } catch (e) {
      if (e.code !== 409) throw e;
    }
  }
  throw new Error(`can not ${op} workflow ${name}: the application keeps changing, try again`);
}

// ---- resources across members, read through the hub's cluster gateway ----

const KINDS = {
  deployments: '/apis/apps/v1', replicasets: '/apis/apps/v1', statefulsets: '/apis/apps/v1',
  daemonsets: '/apis/apps/v1', pods: '/api/v1', services: '/api/v1', configmaps: '/api/v1',
  namespaces: '/api/v1', ingresses: '/apis/networking.k8s.io/v1', jobs: '/apis/batch/v1',
};

async function resourcesPage() {
  const kind = el('select', { id: 'resource-kind', 'aria-label': 'Resource' }, Object.keys(KINDS).map((k) => el('option', { value: k }, k)));
  const ns = el('input', { id: 'resource-namespace', placeholder: 'all namespaces', size: 16, 'aria-label': 'Namespace' });
  const out = el('div', {});
  const load = () => resourcesTable(kind.value, ns.value.trim()).then((t) => out.replaceChildren(t)).catch(showError);
  mount(el('h1', {}, 'Resources across clusters'),
    el('div', { class: 'row' }, kind, ns, el('button', { onclick: load, class: 'primary' }, 'Show')), out);
  await load();
  const timer = setInterval(load, 5000);
  pageWatches.push({ abort: () => clearInterval(timer) });
}

async function resourcesTable(kind, namespace) {
  const clusters = await get(CLUSTERS);
  const scope = namespace && kind !== 'namespaces' ? `/namespaces/${encodeURIComponent(namespace)}` : '';
  const rows = [];
  await Promise.all(clusters.items.map(async (c) => {
    const name = c.metadata.name;
    const path = `${GATEWAY}/${encodeURIComponent(name)}/proxy${KINDS[kind]}${scope}/${kind}`;
    try {
      const list = await get(path);
      for (const o of list.items || []) rows.push([name, o.metadata.namespace || '', o.metadata.name, summary(kind, o), o.metadata.creationTimestamp || '']);
    } catch (e) {
      if (e.code === 401) throw e;
      rows.push([name, '', el('span', { class: 'bad' }, e.code === 403 ? 'Forbidden: ' + e.message : 'Error: ' + e.message), '', '']);
    }
  }));
  rows.sort((a, b) => String(a[0]).localeCompare(String(b[0])) || String(a[1]).localeCompare(String(b[1])));
  return table(['Cluster', 'Namespace', 'Name', 'Status', 'Created'], rows);
}

function summary(kind, o) {
  const s = o.status || {};
  if (kind === 'deployments' || kind === 'replicasets' || kind === 'statefulsets') return `Ready:${s.readyReplicas || 0}/${(o.spec || {}).replicas ?? 0}`;
  if (kind === 'pods') return s.phase || '';
  if (kind === 'services') return ((o.spec || {}).type || '') + ' ' + ((o.spec || {}).clusterIP || '');
  if (kind === 'namespaces') return s.phase || '';
  return '';
}

// ---- start ----

window.addEventListener('hashchange', route);
window.addEventListener('DOMContentLoaded', async () => {
  document.getElementById('signin-form').onsubmit = signIn;
  document.getElementById('signout').onclick = signOut;
  const r = await fetch(API + '/session', { headers: CSRF, credentials: 'same-origin' });
  if (r.ok) signedIn((await r.json()).username);
  else signedOut('');
});
