// The sigrelay console: the JSON API under /api/v1/, polled every 2 s.
'use strict';

const $ = (id) => document.getElementById(id);
let csrf = '';
let chart = null;
let rolloutChart = null;
// Agents on each rolling version per ring, sampled at each refresh:
// "component version" -> { times: [], rings: { name: [installed...] } }.
const rolloutHistory = new Map();
let status = null;

async function api(method, path, body, raw) {
  const headers = {};
  if (csrf) headers['X-CSRF-Token'] = csrf;
  let payload;
  if (raw !== undefined) {
    headers['Content-Type'] = 'application/octet-stream';
    payload = raw;
  } else if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  const res = await fetch(path, { method, headers, body: payload, credentials: 'same-origin' });
  let json = {};
  try { json = await res.json(); } catch (e) { /* not JSON */ }
  if (res.status === 401) showLogin();
  if (!res.ok) {
    const msg = json.error ? json.error.message : `HTTP ${res.status}`;
    throw new Error(msg);
  }
  return json;
}

function bytes(n) {
  n = Number(n || 0);
  if (n >= 1 << 30) return (n / (1 << 30)).toFixed(1) + ' GiB';
  if (n >= 1 << 20) return (n / (1 << 20)).toFixed(1) + ' MiB';
  if (n >= 1 << 10) return (n / (1 << 10)).toFixed(1) + ' KiB';
  return n + ' B';
}

function when(unix) {
  unix = Number(unix || 0);
  if (!unix) return '-';
  return new Date(unix * 1000).toLocaleString();
}

function duration(seconds) {
  seconds = Number(seconds || 0);
  if (seconds % 3600 === 0) return seconds / 3600 + 'h';
  if (seconds % 60 === 0) return seconds / 60 + 'm';
  return seconds + 's';
}

function text(el, value) { el.textContent = value; }

function showLogin() {
  $('console').hidden = true;
  $('logout').hidden = true;
  $('login').hidden = false;
}

function showConsole() {
  $('login').hidden = true;
  $('console').hidden = false;
  $('logout').hidden = false;
}

function renderComponents(s) {
  const last = {};
  for (const u of (s.relay && s.relay.lastUpdates) || []) last[u.component] = u;
  const body = $('components').tBodies[0];
  body.replaceChildren();
  for (const c of s.components) {
    const tr = document.createElement('tr');
    tr.dataset.component = c.name;
    const u = last[c.name];
    const cells = [
      c.name,
      String(c.version) + (c.withdrawn.length ? ` (withdrawn: ${c.withdrawn.join('; ')})` : ''),
      bytes(c.size),
      c.retainedVersions.join(', '),
      c.incrementals.map((i) => `v_${i.fromVersion}.${c.version} ${bytes(i.size)}`).join(', ') || '-',
      u ? `${u.how}${u.fromVersion ? ` from ${u.fromVersion}` : ''}, ${bytes(u.bytes)}` : '-',
    ];
    for (const v of cells) {
      const td = document.createElement('td');
      td.textContent = v;
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }
}

function renderRelay(r) {
  const list = $('upstreams');
  list.replaceChildren();
  for (const u of r.upstreams) {
    const li = document.createElement('li');
    const state = document.createElement('span');
    state.className = u.state === 'ok' ? 'state-ok' : 'state-bad';
    state.textContent = u.state;
    li.append(`${u.address}${u.address === r.upstreamInUse ? ' (in use)' : ''}: `, state,
      u.lastError ? ` - ${u.lastError}` : '');
    list.appendChild(li);
  }
  text($('last-update'), when(r.lastSuccessUnix));
  text($('next-update'), when(r.nextScheduledUnix));
  text($('period'), duration(r.scheduleSeconds));
  text($('proxy-shown'), r.proxy || 'none');
  text($('downloaded'),
    `${bytes(r.bytesIncremental)} as incrementals, ${bytes(r.bytesFull)} as full files`);
  text($('saved'), bytes(r.bytesSaved));
  text($('syncs'), `${r.syncsOk} ok, ${r.syncsFailed} failed` +
    (r.lastError ? ` (last: ${r.lastError})` : ''));
  $('progress-box').hidden = !r.syncRunning;
  if (r.syncRunning) {
    const total = Number(r.syncBytesTotal) || 1;
    $('progress').value = Math.min(1, Number(r.syncBytesDone) / total);
    text($('progress-text'), `${bytes(r.syncBytesDone)} of ${bytes(r.syncBytesTotal)}`);
  }
}

function renderFleet(s) {
  const body = $('fleet').tBodies[0];
  body.replaceChildren();
  for (const c of s.fleet || []) {
    const tr = document.createElement('tr');
    tr.dataset.fleet = `${c.component} ${c.version}`;
    for (const v of [c.component, c.version, c.agents || 0, c.healthy || 0, c.unhealthy || 0,
      c.refused || 0, c.ring || '']) {
      const td = document.createElement('td');
      td.textContent = String(v);
      tr.appendChild(td);
    }
    if (Number(c.unhealthy || 0) > 0) tr.className = 'unhealthy';
    body.appendChild(tr);
  }
}

function rolloutButton(r, action, label) {
  const b = document.createElement('button');
  b.textContent = label;
  b.dataset.action = `${action} ${r.component}`;
  b.addEventListener('click', () => act('rollout', async () => {
    const res = await api('POST', '/api/v1/rollout', { component: r.component, action });
    return res.message;
  }));
  return b;
}

function renderRollouts(s) {
  const rollouts = s.rollouts || [];
  const decisions = s.rolloutDecisions || [];
  $('rollout-section').hidden = s.role !== 'origin' || (!rollouts.length && !decisions.length);
  const box = $('rollouts');
  box.replaceChildren();
  const now = new Date().toLocaleTimeString();
  for (const r of rollouts) {
    const div = document.createElement('div');
    div.className = 'rollout';
    div.dataset.rollout = `${r.component} ${r.version}`;
    const h = document.createElement('h3');
    const state = document.createElement('span');
    state.className = r.state === 'halted' ? 'halted' : '';
    state.textContent = r.state === 'halted' ? 'HALTED' : 'rolling out';
    h.append(`${r.component} ${r.version} `, state,
      ` (others keep ${r.previousVersion}; ${r.plan})`);
    div.appendChild(h);
    if (r.reason) {
      const p = document.createElement('p');
      p.className = 'reason';
      p.textContent = r.reason;
      div.appendChild(p);
    }
    const table = document.createElement('table');
    table.innerHTML = '<thead><tr><th>Ring</th><th>Share</th><th>Admitted</th><th>Agents</th>' +
      `<th>On ${r.version}</th><th>Healthy</th><th>Unhealthy</th><th>Silent</th></tr></thead>`;
    const body = document.createElement('tbody');
    const key = `${r.component} ${r.version}`;
    if (!rolloutHistory.has(key)) rolloutHistory.set(key, { times: [], rings: {} });
    const hist = rolloutHistory.get(key);
    hist.times.push(now);
    for (const g of r.rings || []) {
      const tr = document.createElement('tr');
      tr.dataset.ring = g.name;
      if (!g.admitted) tr.className = 'waiting';
      const cells = [g.name, `${(Number(g.shareBp || 0) / 100)}%`, g.admitted ? 'yes' : 'waiting',
        g.agents || 0, g.installed || 0, g.healthy || 0, g.unhealthy || 0, g.silent || 0];
      cells.forEach((v, i) => {
        const td = document.createElement('td');
        td.textContent = String(v);
        if (i === 6 && Number(v) > 0) td.className = 'bad';
        tr.appendChild(td);
      });
      body.appendChild(tr);
      (hist.rings[g.name] = hist.rings[g.name] || []).push(Number(g.installed || 0));
    }
    if (hist.times.length > 300) {
      hist.times.shift();
      for (const v of Object.values(hist.rings)) v.shift();
    }
    table.appendChild(body);
    div.appendChild(table);
    const actions = document.createElement('div');
    actions.className = 'action';
    actions.append(rolloutButton(r, 'promote', 'Promote next ring'),
      r.state === 'halted' ? rolloutButton(r, 'resume', 'Resume') : rolloutButton(r, 'halt', 'Halt'));
    div.appendChild(actions);
    box.appendChild(div);
  }
  const list = $('rollout-decisions');
  list.replaceChildren();
  for (const d of decisions.slice().reverse()) {
    const li = document.createElement('li');
    li.dataset.action = d.action;
    li.textContent = `${when(d.decidedUnix)}: ${d.component} ${d.version} ${d.action} ` +
      `${d.ring}: ${d.evidence}`;
    list.appendChild(li);
  }
  const shown = rollouts.length ? `${rollouts[0].component} ${rollouts[0].version}` : null;
  const canvas = $('rollout-chart');
  canvas.parentElement.hidden = !shown;
  if (!shown || !window.Chart) return;
  const hist = rolloutHistory.get(shown);
  const colors = ['#b3261e', '#e8a317', '#2d5bd7', '#2e7d32', '#6a1b9a'];
  const datasets = Object.entries(hist.rings).map(([name, data], i) => ({
    label: `${name}: agents on ${shown}`, data: data.slice(), borderColor: colors[i % 5],
    backgroundColor: colors[i % 5], fill: false, tension: 0 }));
  if (!rolloutChart) {
    rolloutChart = new window.Chart(canvas, {
      type: 'line',
      data: { labels: hist.times.slice(), datasets },
      options: { animation: false, maintainAspectRatio: false,
        scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
    });
  } else {
    rolloutChart.data.labels = hist.times.slice();
    rolloutChart.data.datasets = datasets;
    rolloutChart.update();
  }
}

function renderAgents(s) {
  renderFleet(s);
  text($('watchers'), s.watchers);
  text($('agents'), s.agentsReported);
  text($('agents-stale'), s.agentsStale || 0);
  text($('pushing'), s.pushesPaused ? 'paused' : 'on');
  text($('pause'), s.pushesPaused ? 'Resume pushing' : 'Pause pushing');
  const labels = [];
  const counts = [];
  for (const a of s.agentVersions) {
    labels.push(`${a.component} ${a.otherVersions ? 'other' : a.version}`);
    counts.push(Number(a.agents));
  }
  const canvas = $('agents-chart');
  canvas.dataset.labels = labels.join('|');
  canvas.dataset.counts = counts.join('|');
  if (window.Chart) {
    if (!chart) {
      chart = new window.Chart(canvas, {
        type: 'bar',
        data: { labels, datasets: [{ label: 'agents per version', data: counts,
          backgroundColor: '#2d5bd7' }] },
        options: { animation: false, maintainAspectRatio: false,
          scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
      });
    } else {
      chart.data.labels = labels;
      chart.data.datasets[0].data = counts;
      chart.update();
    }
  }
  const t = s.transfers;
  const dl = $('transfers');
  dl.replaceChildren();
  for (const [k, v] of [['active', t.active], ['queued', t.queued], ['refused', t.refused],
    ['stalled', t.stalled], ['fetches served', t.fetches], ['incrementals pushed', t.pushed]]) {
    const dt = document.createElement('dt');
    dt.textContent = k;
    const dd = document.createElement('dd');
    dd.textContent = v;
    dl.append(dt, dd);
  }
}

function render(s) {
  status = s;
  text($('role'), s.role);
  const f = $('freshness');
  f.textContent = s.manifestFreshness || 'no manifest';
  f.className = 'badge ' + (s.manifestFreshness || '');
  text($('serial'), s.manifestSerial);
  text($('expires'), when(s.manifestExpiresUnix));
  text($('root-version'), s.rootVersion);
  $('relay-section').hidden = s.role !== 'relay';
  $('origin-section').hidden = s.role !== 'origin';
  renderComponents(s);
  if (s.role === 'relay') renderRelay(s.relay);
  renderRollouts(s);
  renderAgents(s);
}

async function refresh() {
  try {
    render(await api('GET', '/api/v1/status'));
    showConsole();
  } catch (e) { /* 401 shows the sign-in form; other errors retry */ }
}

// Runs `work` for a button or form: errors go next to it, never alerts.
async function act(prefix, work) {
  const error = $(prefix + '-error');
  const result = $(prefix + '-result');
  text(error, '');
  if (result) text(result, '');
  try {
    const r = await work();
    if (result && r) text(result, r);
    await refresh();
  } catch (e) {
    text(error, e.message);
  }
}

function describeUpdate(r) {
  const parts = (r.updated || []).map((u) =>
    `${u.component} ${u.fromVersion || '-'} -> ${u.version} by ${u.how} (${bytes(u.bytes)})`);
  const skipped = (r.skipped || []).map((s) => `skipped ${s}`);
  return parts.concat(skipped).join('; ') || `already current (serial ${r.manifestSerial})`;
}

function wire() {
  $('login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    text($('login-error'), '');
    try {
      const r = await api('POST', '/api/v1/login', { token: $('token').value });
      csrf = r.csrfToken;
      $('token').value = '';
      await refresh();
    } catch (e) {
      text($('login-error'), e.message);
    }
  });
  $('logout').addEventListener('click', async () => {
    try { await api('POST', '/api/v1/logout', {}); } catch (e) { /* gone anyway */ }
    csrf = '';
    showLogin();
  });
  $('update-now').addEventListener('click', async () => {
    const button = $('update-now');
    button.disabled = true;
    await act('update', async () => describeUpdate(await api('POST', '/api/v1/update', {})));
    button.disabled = false;
  });
  $('period-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    act('period', async () => {
      const r = await api('PUT', '/api/v1/schedule', { period: $('period-input').value.trim() });
      return `every ${duration(r.scheduleSeconds)}; next update ${when(r.nextScheduledUnix)}`;
    });
  });
  $('proxy-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    act('proxy', async () => {
      const r = await api('PUT', '/api/v1/proxy', { url: $('proxy-input').value.trim() });
      $('proxy-input').value = '';
      return `proxy set: ${r.proxy || 'none'}`;
    });
  });
  $('proxy-clear').addEventListener('click', () => act('proxy', async () => {
    await api('PUT', '/api/v1/proxy', { url: '' });
    return 'proxy cleared';
  }));
  $('pause').addEventListener('click', () => act('pause', async () => {
    await api('PUT', '/api/v1/pushing', { paused: !(status && status.pushesPaused) });
  }));
  $('publish-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    act('publish', async () => {
      const file = $('publish-file').files[0];
      const name = $('publish-component').value.trim();
      const r = await api('POST', `/api/v1/publish/${encodeURIComponent(name)}`, undefined,
        await file.arrayBuffer());
      return `published ${r.component} ${r.version} (${bytes(r.size)})`;
    });
  });
}

async function start() {
  wire();
  try {
    csrf = (await api('GET', '/api/v1/session')).csrfToken;
  } catch (e) { csrf = ''; }
  await refresh();
  setInterval(refresh, 2000);
}

start();
