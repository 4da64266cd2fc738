'use strict';
// The evidence desk. No inline script, no third-party code; the CSRF token lives in memory only and the
// session in an HttpOnly cookie, so script on the page never sees the session id.
(() => {
  const $ = id => document.getElementById(id);
  let csrf = null, role = null, polling = null;
  const seen = new Set();  // verified fetch requests already reflected in the search rows
  const rank = r => ['viewer', 'investigator', 'admin'].indexOf(r);

  function say(text, ok) {
    const m = $('message');
    m.textContent = text; m.hidden = !text; m.className = ok ? 'ok' : '';
  }
  async function api(method, path, body) {
    const opts = { method, headers: {}, credentials: 'same-origin' };
    if (method !== 'GET') opts.headers['X-CSRF-Token'] = csrf || '';
    if (body !== undefined) { opts.headers['Content-Type'] = 'application/json'; opts.body = JSON.stringify(body); }
    const resp = await fetch(path, opts);
    if (resp.status === 401 && path !== '/api/session') { show(false); }
    return resp;
  }
  async function json(method, path, body) {
    const resp = await api(method, path, body);
    const data = await resp.json().catch(() => ({}));
    if (!resp.ok) throw new Error(data.error || `${resp.status}`);
    return data;
  }
  const pad = n => String(n).padStart(2, '0');
  const local = ts => { const d = new Date(ts * 1000);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`; };
  const utc = ts => new Date(ts * 1000).toISOString().replace(/\.\d+Z$/, 'Z');
  const el = (tag, cls, text) => { const e = document.createElement(tag); if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text; return e; };
  const button = (text, cls, fn) => { const b = el('button', cls, text); b.type = 'button';
    b.addEventListener('click', () => fn().catch(err => say(`${text} failed: ${err.message}`))); return b; };

  function show(signedIn, who) {
    $('app').hidden = !signedIn; $('signin-form').hidden = signedIn; $('signout').hidden = !signedIn;
    $('who').hidden = !signedIn; $('who').textContent = who ? `${who.user} (${who.role})` : '';
    for (const id of ['fetches', 'cases']) $(id).hidden = !signedIn || rank(role) < 1;
    if (!signedIn) { csrf = null; role = null; clearInterval(polling); polling = null; }
  }
  async function start(who) {
    csrf = who.csrf; role = who.role; show(true, who);
    $('zone').textContent = Intl.DateTimeFormat().resolvedOptions().timeZone || 'local time';
    await Promise.all([fleet(), search()]);
    if (rank(role) >= 1) { await Promise.all([fetches(), cases()]); polling = setInterval(() => fetches().catch(() => {}), 1000); }
  }

  async function fleet() {
    const rows = await json('GET', '/api/fleet');
    const list = $('fleet-list'); list.replaceChildren();
    for (const n of rows) {
      const li = el('li'); li.dataset.node = n.node;
      li.append(el('b', 'id', n.node), ' ', el('span', n.state === 'online' ? 'good' : 'bad', n.state || '?'));
      li.append(el('div', '', n.last_seen ? `last seen ${local(n.last_seen)} (${utc(n.last_seen)})` : 'never seen'));
      const disk = n.disk_free_pct != null ? `${n.disk_free_pct}% free` : '-';
      const clock = n.time_ok == null ? '-' : n.time_ok ? 'synced' : 'NOT synced';
      li.append(el('div', '', `seq ${n.contiguous_seq ?? '-'} contiguous, max ${n.max_seq ?? '-'}; outbox`
        + ` ${n.outbox ?? '-'}; disk ${disk}; clock ${clock}`));
      const cams = Object.entries(n.cameras || {}), wrong = cams.filter(([, p]) => p.length);
      if (cams.length) {  // from the node's last stats: what keeps a camera from giving evidence
        li.append(el('div', wrong.length ? 'bad' : '', wrong.length
          ? `cameras ${cams.length - wrong.length}/${cams.length} ok: `
            + wrong.map(([c, p]) => `${c} ${p.join(' + ')}`).join(', ')
          : `cameras: ${cams.length} ok`));
      }
      for (const m of n.missing || []) {
        const gap = el('div', m.alarm ? 'bad gap' : 'note gap',
          `missing seq ${m.first}-${m.last}${m.alarm ? ' ALARM' : m.acked ? ' acknowledged' : ''}`);
        if (!m.acked && rank(role) >= 2) {
          const form = el('form', 'ack'), reason = el('input');
          reason.placeholder = 'reason (e.g. node off for repair)'; reason.required = true; reason.maxLength = 500;
          const ok = el('button', '', 'Acknowledge'); ok.type = 'submit';
          form.append(reason, ok);
          form.addEventListener('submit', async ev => { ev.preventDefault();
            try { await json('POST', `/api/fleet/${encodeURIComponent(n.node)}/ack`,
                             { first: m.first, last: m.last, reason: reason.value });
              say(`seqs ${m.first}-${m.last} of ${n.node} acknowledged`, true); await fleet();
            } catch (err) { say(`Acknowledge failed: ${err.message}`); } });
          gap.append(form);
        }
        li.append(gap);
      }
      list.append(li);
    }
  }

  const when = id => { const v = $(id).value; return v ? String(new Date(v).getTime() / 1000) : ''; };
  async function search() {
    const q = new URLSearchParams({ since: when('s-since'), until: when('s-until'), node: $('s-node').value,
      camera: $('s-camera').value, zone: $('s-zone').value, label: $('s-label').value });
    const data = await json('GET', '/api/search?' + q);
    const list = $('results'); list.replaceChildren();
    for (const r of data.rows) {
      const li = el('li', 'row'); li.dataset.id = r.id; li.dataset.clip = r.clip || '';
      li.append(thumb(r));
      li.append(el('div', '', `${local(r.first_ts)} (${utc(r.first_ts)})`));
      li.append(el('div', '', `${r.label} on ${r.node} / ${r.camera}` + (r.zones.length ? ` in ${r.zones.join(', ')}` : '')
        + (r.line ? `, line ${r.line.name} ${r.line.dir}` : '')));
      if (r.clip) li.append(el('div', 'id', `clip ${r.clip}`));
      const acts = el('div', 'acts');
      if (r.clip && r.stored) acts.append(button('Watch', 'watch', async () => play(r.node, r.clip)));
      if (r.clip && !r.stored && rank(role) >= 1) acts.append(button('Fetch', 'fetch', async () => {
        await json('POST', '/api/fetches', { node: r.node, clip: r.clip }); say(`fetch of ${r.clip} requested`, true);
        await fetches(); }));
      if (r.clip && r.stored && rank(role) >= 1) acts.append(button('Add to case', 'add', async () => {
        const name = $('c-name').value || (document.querySelector('#case-list li') || {}).dataset?.name;
        if (!name) throw new Error('open a case first');
        await json('POST', `/api/cases/${encodeURIComponent(name)}/clips`, { node: r.node, clip: r.clip });
        say(`${r.clip} added to case ${name}`, true); await cases(); }));
      li.append(acts); list.append(li);
    }
  }
  // The row's thumbnail, asked of the desk only as the row scrolls into view (the desk pulls it from the node
  // within a few seconds); a node that cannot be reached leaves the placeholder.
  function thumb(r) {
    const box = el('div', 'thumb'); box.append(el('span', 'noimg', 'no thumbnail'));
    if (!r.clip) return box;
    const img = document.createElement('img');
    img.alt = `${r.label} on ${r.node} / ${r.camera}`; img.loading = 'lazy'; img.decoding = 'async';
    // in the box from the start (a lazy image outside the document never loads), over the placeholder
    img.addEventListener('load', () => { box.replaceChildren(img); box.dataset.state = 'loaded'; });
    img.addEventListener('error', () => { img.remove(); box.dataset.state = 'none'; });
    img.src = `/api/thumbs/${encodeURIComponent(r.node)}/${encodeURIComponent(r.clip)}.jpg`;
    box.append(img);
    return box;
  }
  function play(node, clip) {
    $('player').hidden = false; $('playing').textContent = clip;
    $('video').src = `/api/clips/${encodeURIComponent(node)}/${encodeURIComponent(clip)}.mp4`;
    $('video').play().catch(() => {});
  }

  async function fetches() {
    const rows = await json('GET', '/api/fetches');
    const list = $('fetch-list'); list.replaceChildren();
    let done = false;
    for (const f of rows) {
      const li = el('li'); li.dataset.id = String(f.id); li.dataset.state = f.state; li.dataset.clip = f.clip;
      li.append(el('span', 'id', `${f.node} / ${f.clip}`), ' ', el('b', f.state === 'failed' ? 'bad' : 'good', f.state),
        ` (${f.via})`);
      if (f.progress) { const p = el('progress'); p.max = f.progress.total; p.value = f.progress.done; li.append(p); }
      if (f.reason) li.append(el('div', 'note', f.reason));
      if (f.sha256) li.append(el('div', 'sha', `sha256 ${f.sha256}`));
      if (f.state === 'verified' && !seen.has(f.id)) { seen.add(f.id); done = true; }
      list.append(li);
    }
    if (done) await search();
  }

  async function cases() {
    const rows = await json('GET', '/api/cases');
    const list = $('case-list'); list.replaceChildren();
    for (const c of rows) {
      const li = el('li'); li.dataset.name = c.name;
      li.append(el('b', 'id', c.name), ` ${c.state}, ${c.clips.length} clip(s)`);
      if (c.notes) li.append(el('div', 'note', c.notes));
      for (const i of c.clips) li.append(el('div', 'id', `${i.node} / ${i.clip}`));
      const acts = el('div', 'acts');
      acts.append(button('Export', 'export', async () => {
        const resp = await api('POST', `/api/cases/${encodeURIComponent(c.name)}/export`);
        if (!resp.ok) throw new Error((await resp.json().catch(() => ({}))).error || resp.status);
        const name = (resp.headers.get('Content-Disposition') || '').match(/filename="([^"]+)"/);
        const a = el('a'); a.href = URL.createObjectURL(await resp.blob());
        a.download = name ? name[1] : `case-${c.name}.zip`; document.body.append(a); a.click(); a.remove();
        say(`case ${c.name} exported`, true); }));
      li.append(acts); list.append(li);
    }
  }

  $('signin-form').addEventListener('submit', async ev => {
    ev.preventDefault();
    const resp = await api('POST', '/api/session', { user: $('user').value, password: $('password').value });
    const data = await resp.json().catch(() => ({}));
    $('password').value = '';
    if (!resp.ok) { say(`Sign-in refused: ${data.error || resp.status}`); return; }
    say('');
    await start(data).catch(err => say(err.message));
  });
  $('signout').addEventListener('click', async () => { await api('DELETE', '/api/session'); show(false); });
  $('search-form').addEventListener('submit', ev => { ev.preventDefault(); search().catch(err => say(`Search failed: ${err.message}`)); });
  $('case-form').addEventListener('submit', async ev => {
    ev.preventDefault();
    try { await json('POST', '/api/cases', { name: $('c-name').value, notes: $('c-notes').value });
      say(`case ${$('c-name').value} opened`, true); await cases(); } catch (err) { say(`Open case failed: ${err.message}`); }
  });
  fetch('/api/session', { credentials: 'same-origin' }).then(r => r.ok ? r.json().then(start) : show(false)).catch(() => show(false));
})();
