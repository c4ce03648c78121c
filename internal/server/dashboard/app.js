// fleetsync dashboard: reads api/v1/status every 5 s and renders it. Every
// value from the API goes into the page as text (textContent), never as markup.
'use strict';

(function () {
  const REFRESH_MS = 5000;
  const TIMEOUT_MS = 4000;

  let skewMs = 0;          // the server's clock minus ours, from the Date header
  let lastBody = '';       // the last response, to skip identical renders
  let lastStatus = null;
  let lastOK = 0;          // when the last good response arrived (our clock)
  let timer = 0;
  const userOpen = new Map(); // rollout details opened or closed by the user
  let rendering = false;

  const $ = (id) => document.getElementById(id);

  // el builds an element: attrs may hold class, title, text and attributes;
  // children are nodes or strings (as text).
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k === 'data') Object.assign(e.dataset, v);
      else e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children) {
      if (c === undefined || c === null || c === false) continue;
      e.append(c);
    }
    return e;
  }

  function shortRev(rev) {
    if (!rev) return '';
    return /^[0-9a-f]{12,}$/i.test(rev) ? rev.slice(0, 7) : rev;
  }

  function isZeroTime(ts) {
    return !ts || ts.startsWith('0001-01-01');
  }

  function ago(ts) {
    if (isZeroTime(ts)) return 'never';
    const t = Date.parse(ts);
    if (Number.isNaN(t)) return ts;
    let s = Math.round((Date.now() + skewMs - t) / 1000);
    if (s < 1) return 'just now';
    if (s < 60) return s + 's ago';
    const m = Math.floor(s / 60);
    if (m < 60) return m + 'm ago';
    const h = Math.floor(m / 60);
    if (h < 48) return h + 'h ' + (m % 60) + 'm ago';
    return Math.floor(h / 24) + 'd ago';
  }

  // since is a <time> whose text ("12s ago") the ticker keeps current.
  function since(ts) {
    if (isZeroTime(ts)) return el('span', { class: 'muted', text: 'never' });
    return el('time', { datetime: ts, title: new Date(ts).toLocaleString(), data: { since: ts }, text: ago(ts) });
  }

  function tick() {
    for (const t of document.querySelectorAll('[data-since]')) {
      const v = ago(t.dataset.since);
      if (t.textContent !== v) t.textContent = v;
    }
    if (lastOK) {
      const s = Math.round((Date.now() - lastOK) / 1000);
      $('updated').textContent = s < 2 ? 'Updated just now' : 'Updated ' + s + 's ago';
    }
  }

  function oneLine(s) {
    return (s || '').split('\n').map((l) => l.trim()).filter(Boolean).join('; ');
  }

  // ---- classification (text and class, never colour alone) ----

  // pairClass is the tone of an app on a cluster.
  function pairTone(a) {
    if (a.sync === 'Failed' || a.sync === 'RolledBack' || a.health === 'Degraded') return 'bad';
    if (a.sync === 'OutOfSync' || a.health === 'Progressing') return 'warn';
    if (a.sync === 'Synced' && a.health === 'Healthy') return 'ok';
    return 'unk';
  }

  const phaseTone = { Done: 'ok', Progressing: 'info', Halted: 'bad', RollingBack: 'bad', RolledBack: 'bad' };
  const stateTone = {
    Healthy: 'ok', Soaking: 'ok-soft', Progressing: 'info', Pending: 'unk', Held: 'unk',
    Failed: 'bad', RolledBack: 'bad', Unreachable: 'warn', Blocked: 'warn',
  };
  // The API's words, as `fleetsync status` prints them.
  const label = (s) => s || 'Unknown';

  // ---- sections ----

  function renderSource(st) {
    const src = st.source || {};
    const dl = $('source');
    const items = [];
    const add = (k, ...v) => items.push(el('div', {}, el('dt', { text: k }), el('dd', {}, ...v)));
    add('Repo', el('span', { class: 'url', title: src.url || '', text: src.url || '—' }),
      src.branch ? el('span', { class: 'muted', text: ' @ ' + src.branch }) : null);
    add('Revision', src.revision ? el('code', { title: src.revision, text: shortRev(src.revision) }) : el('span', { class: 'muted', text: 'none yet' }),
      src.fetched && src.fetched !== src.revision
        ? el('span', { class: 'tone-bad-text', title: src.fetched, text: ' (newest ' + shortRev(src.fetched) + ' not in force)' })
        : null);
    add('Fetched', since(src.lastFetch));
    add('Reconciled', since(st.lastReconcile),
      st.reconcileSeconds ? el('span', { class: 'muted', text: ' in ' + st.reconcileSeconds.toFixed(1) + ' s' }) : null);
    dl.replaceChildren(...items);

    const mode = $('mode');
    mode.hidden = !st.mode;
    mode.textContent = st.mode || '';

    const banner = $('source-error');
    if (src.error) {
      const lines = src.error.split('\n').filter(Boolean);
      banner.replaceChildren(
        el('strong', { text: 'Source error' + (src.revision ? ' — still running ' + shortRev(src.revision) : '') + ': ' }),
        lines.length > 1 ? el('ul', {}, ...lines.map((l) => el('li', { text: l }))) : el('span', { text: lines[0] || src.error }));
      banner.hidden = false;
    } else {
      banner.hidden = true;
      banner.replaceChildren();
    }
  }

  function renderSummary(st) {
    const clusters = st.clusters || [];
    const up = clusters.filter((c) => c.up).length;
    let pairs = 0, healthy = 0, bad = 0, drift = 0;
    for (const c of clusters) {
      for (const a of c.apps || []) {
        pairs++;
        const t = pairTone(a);
        if (t === 'ok') healthy++;
        if (t === 'bad') bad++;
        drift += a.drifted || 0;
      }
    }
    const halted = (st.rollouts || []).filter((r) => phaseTone[r.phase] === 'bad').length;
    const tile = (tone, value, what) => el('div', { class: 'tile tone-' + tone },
      el('span', { class: 'tile-value', text: value }), el('span', { class: 'tile-label', text: what }));
    $('summary').replaceChildren(
      tile(up === clusters.length ? 'ok' : 'bad', up + '/' + clusters.length, 'clusters up'),
      tile(healthy === pairs ? 'ok' : 'warn', healthy + '/' + pairs, 'apps synced and healthy'),
      tile(bad ? 'bad' : 'ok', String(bad), bad === 1 ? 'failure' : 'failures'),
      tile(halted ? 'bad' : 'ok', String(halted), 'rollouts halted or rolled back'),
      tile(drift ? 'warn' : 'ok', String(drift), 'objects drifted'));
  }

  function renderClusters(st) {
    const cards = (st.clusters || []).map((c) => {
      const apps = c.apps || [];
      const bad = apps.filter((a) => pairTone(a) === 'bad').length;
      const nodesTone = c.nodes && c.nodesReady < c.nodes ? 'tone-warn-text' : '';
      return el('li', { class: 'card ' + (c.up ? 'is-up' : 'is-down'), data: { cluster: c.name } },
        el('div', { class: 'card-head' },
          el('h3', { class: 'card-name', title: c.name, text: c.name }),
          el('span', { class: 'pill tone-' + (c.up ? 'ok' : 'bad'), text: c.up ? 'Up' : 'Down' })),
        el('dl', { class: 'facts' },
          el('div', {}, el('dt', { text: 'Version' }), el('dd', { text: c.version || '—' })),
          el('div', {}, el('dt', { text: 'Nodes' }), el('dd', { class: nodesTone, text: c.nodes ? c.nodesReady + '/' + c.nodes + ' ready' : '—' })),
          el('div', {}, el('dt', { text: 'Heartbeat' }), el('dd', {}, since(c.lastSeen))),
          el('div', {}, el('dt', { text: 'Apps' }), bad
            ? el('dd', { class: 'tone-bad-text', text: bad + '/' + apps.length + ' failing' })
            : el('dd', { text: apps.length + (apps.length === 1 ? ' app' : ' apps') }))),
        c.error ? el('p', { class: 'card-error', title: c.error, text: oneLine(c.error) }) : null);
    });
    const list = $('clusters');
    list.classList.toggle('compact', cards.length > 12);
    list.replaceChildren(...cards);
  }

  // rolloutReason finds why app is where it is on cluster, from its rollout.
  function rolloutReason(st, app, cluster) {
    const r = (st.rollouts || []).find((x) => x.app === app);
    if (!r) return '';
    const c = (r.clusters || []).find((x) => x.cluster === cluster);
    return (c && c.reason) || r.reason || '';
  }

  function renderMatrix(st) {
    const clusters = st.clusters || [];
    const names = new Set();
    for (const c of clusters) for (const a of c.apps || []) names.add(a.name);
    const apps = [...names].sort();
    const byCluster = clusters.map((c) => new Map((c.apps || []).map((a) => [a.name, a])));
    const rollouts = new Map((st.rollouts || []).map((r) => [r.app, r]));
    const onlyProblems = $('only-problems').checked;

    if (!apps.length) {
      $('matrix').replaceChildren(el('p', { class: 'empty', text: 'No app targets any cluster.' }));
      return;
    }

    const head = el('tr', {}, el('th', { scope: 'col', class: 'corner', text: 'App' }),
      ...clusters.map((c) => el('th', { scope: 'col', class: 'col-cluster' + (c.up ? '' : ' is-down'), title: c.name + (c.up ? '' : ' (down)') },
        el('span', { class: 'dot tone-' + (c.up ? 'ok' : 'bad'), 'aria-hidden': 'true' }),
        c.name, c.up ? null : el('span', { class: 'sr-only', text: ' (down)' }))));

    const rows = [];
    for (const app of apps) {
      const cells = [];
      let problem = false;
      clusters.forEach((c, i) => {
        const a = byCluster[i].get(app);
        if (!a) {
          cells.push(el('td', { class: 'cell na', title: app + ' does not target ' + c.name },
            el('span', { 'aria-hidden': 'true', text: '–' }), el('span', { class: 'sr-only', text: 'not targeted' })));
          return;
        }
        const tone = pairTone(a);
        if (tone !== 'ok' || a.drifted > 0) problem = true;
        const reason = oneLine(a.error) || (tone === 'bad' || a.sync === 'OutOfSync' ? oneLine(rolloutReason(st, app, c.name)) : '');
        const title = [app + ' on ' + c.name + ': ' + (a.revision ? shortRev(a.revision) + ' ' : '') + a.sync + '/' + a.health,
          a.drifted ? a.drifted + ' drifted' : '', reason].filter(Boolean).join('\n');
        cells.push(el('td', { class: 'cell tone-' + tone, title: title, data: { app: app, cluster: c.name, sync: a.sync } },
          el('div', { class: 'cell-top' },
            el('code', { class: 'rev', text: a.revision ? shortRev(a.revision) : '–' }),
            a.drifted > 0 ? el('span', { class: 'drift', title: a.drifted + ' objects drifted', text: '⚠ ' + a.drifted }) : null),
          el('div', { class: 'cell-state' }, el('span', { text: label(a.sync) }), el('span', { class: 'sep', text: ' · ' }), el('span', { text: label(a.health) })),
          tone === 'bad' && reason ? el('div', { class: 'cell-reason', text: reason }) : null));
      });
      if (onlyProblems && !problem) continue;
      const r = rollouts.get(app);
      rows.push(el('tr', { data: { app: app } },
        el('th', { scope: 'row', class: 'row-app', title: app },
          el('span', { class: 'app-name', text: app }),
          r && r.phase !== 'Done' ? el('span', { class: 'pill small tone-' + (phaseTone[r.phase] || 'unk'), text: label(r.phase) }) : null),
        ...cells));
    }
    if (!rows.length) {
      rows.push(el('tr', {}, el('td', { colspan: clusters.length + 1, class: 'empty', text: 'Every app is synced and healthy everywhere.' })));
    }
    $('matrix').replaceChildren(el('table', { class: 'matrix' },
      el('caption', { class: 'sr-only', text: 'Each app (rows) on each cluster (columns): revision, sync state, health, drift' }),
      el('thead', {}, head), el('tbody', {}, ...rows)));
  }

  function renderRollouts(st) {
    const rolls = st.rollouts || [];
    const onlyProblems = $('only-problems').checked;
    const out = [];
    for (const r of rolls) {
      const tone = phaseTone[r.phase] || 'unk';
      if (onlyProblems && tone === 'ok') continue;
      const cs = (r.clusters || []).slice().sort((a, b) => a.wave - b.wave || a.cluster.localeCompare(b.cluster));
      const done = cs.filter((c) => c.state === 'Healthy').length;
      const waves = [];
      for (const c of cs) (waves[c.wave] = waves[c.wave] || []).push(c);
      const nWaves = Math.max(r.waves || 0, waves.length);

      const bar = el('div', { class: 'bar', 'aria-hidden': 'true' },
        ...cs.map((c) => el('span', { class: 'seg tone-' + (stateTone[c.state] || 'unk') })));
      const waveList = el('ol', { class: 'waves' });
      for (let w = 0; w < nWaves; w++) {
        const list = waves[w] || [];
        const current = w === r.wave && r.phase !== 'Done';
        waveList.append(el('li', { class: 'wave' + (current ? ' is-current' : '') },
          el('span', { class: 'wave-name', text: 'Wave ' + (w + 1) }),
          current ? el('span', { class: 'sr-only', text: ' (current)' }) : null,
          el('ul', { class: 'chips' }, ...list.map((c) => el('li', {
            class: 'chip tone-' + (stateTone[c.state] || 'unk'), title: c.cluster + ': ' + label(c.state) + (c.reason ? '\n' + c.reason : ''),
            data: { cluster: c.cluster, state: c.state },
          }, el('span', { class: 'chip-name', text: c.cluster }), el('span', { class: 'chip-state', text: label(c.state) }))))));
      }
      const failing = cs.filter((c) => stateTone[c.state] === 'bad' && c.reason);
      const details = el('details', { class: 'rollout tone-border-' + tone, data: { app: r.app } },
        el('summary', {},
          el('span', { class: 'rollout-app', text: r.app }),
          el('span', { class: 'pill tone-' + tone, text: label(r.phase) }),
          el('span', { class: 'muted', text: 'wave ' + Math.min(r.wave + 1, Math.max(nWaves, 1)) + '/' + nWaves }),
          el('span', { class: 'muted' }, 'target ', el('code', { title: r.target || '', text: shortRev(r.target) || '—' })),
          el('span', { class: 'rollout-count', text: done + '/' + cs.length + ' healthy' })),
        bar,
        r.reason ? el('p', { class: 'rollout-reason' + (tone === 'bad' ? ' tone-bad-text' : ''), text: oneLine(r.reason) }) : null,
        waveList,
        failing.length ? el('ul', { class: 'reasons' }, ...failing.map((c) =>
          el('li', {}, el('strong', { text: c.cluster + ' ' + label(c.state) + ': ' }), oneLine(c.reason)))) : null);
      details.open = userOpen.has(r.app) ? userOpen.get(r.app) : tone !== 'ok';
      details.addEventListener('toggle', () => { if (!rendering) userOpen.set(r.app, details.open); });
      out.push(details);
    }
    if (!out.length) out.push(el('p', { class: 'empty', text: rolls.length ? 'Every rollout is done.' : 'No rollouts yet.' }));
    $('rollouts').replaceChildren(...out);
  }

  function render(st) {
    const wrap = $('matrix');
    const keep = { x: window.scrollX, y: window.scrollY, left: wrap.scrollLeft, top: wrap.scrollTop };
    rendering = true;
    try {
      renderSource(st);
      renderSummary(st);
      renderClusters(st);
      renderMatrix(st);
      renderRollouts(st);
    } finally {
      wrap.scrollLeft = keep.left;
      wrap.scrollTop = keep.top;
      window.scrollTo(keep.x, keep.y);
      // toggle events of the new <details> fire after this task
      setTimeout(() => { rendering = false; }, 0);
    }
  }

  function showConnError(msg) {
    const b = $('conn-error');
    b.replaceChildren(el('strong', { text: 'Cannot read the status: ' }), msg,
      lastOK ? el('span', { text: ' — showing what was known ' + Math.round((Date.now() - lastOK) / 1000) + 's ago; retrying.' }) : ' — retrying.');
    b.hidden = false;
    document.body.dataset.state = lastStatus ? 'stale' : 'error';
  }

  async function refresh() {
    clearTimeout(timer);
    const ctl = new AbortController();
    const t = setTimeout(() => ctl.abort(), TIMEOUT_MS);
    try {
      const res = await fetch('api/v1/status', { cache: 'no-store', signal: ctl.signal, headers: { Accept: 'application/json' } });
      if (!res.ok) throw new Error('HTTP ' + res.status);
      const body = await res.text();
      const date = Date.parse(res.headers.get('Date') || '');
      // The Date header has whole seconds: only a larger skew is the clocks'.
      if (!Number.isNaN(date)) skewMs = Math.abs(date + 500 - Date.now()) < 1500 ? 0 : date + 500 - Date.now();
      lastOK = Date.now();
      $('conn-error').hidden = true;
      if (body !== lastBody) {
        const st = JSON.parse(body);
        render(st);
        lastBody = body;
        lastStatus = st;
      }
      document.body.dataset.state = 'ready';
    } catch (err) {
      showConnError(err && err.name === 'AbortError' ? 'the daemon did not answer in time' : String(err && err.message || err));
    } finally {
      clearTimeout(t);
      tick();
      if (!document.hidden) timer = setTimeout(refresh, REFRESH_MS);
    }
  }

  document.addEventListener('visibilitychange', () => { if (!document.hidden) refresh(); });
  document.addEventListener('DOMContentLoaded', () => {
    $('only-problems').addEventListener('change', () => { if (lastStatus) render(lastStatus); });
    setInterval(tick, 1000);
    refresh();
  });
})();
