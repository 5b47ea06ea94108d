// alerts.test.mjs - an alert the guard denied on becomes a row in the
// store (GET /api/v1/alerts for the académie's admins and DPO) and a JSON
// POST to the webhook - here a tiny node server on 127.0.0.1 - with no
// personal data in it; the address block it caused survives a restart;
// window lengths and COFFRE_GUARD_* come from the command line and the
// environment.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { once } from 'node:events';
import { join } from 'node:path';
import { coffre } from './helpers.mjs';
import { startServer, request, closeAgents, FAST_HASH, STRONG, cookieOf } from './server.mjs';
import { school, signIn, sqlite, ine } from './school.mjs';

// A webhook receiver: every POST kept; answers 204.
async function receiver(t) {
  const got = [];
  const srv = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => { got.push({ method: req.method, url: req.url, type: req.headers['content-type'], body }); res.statusCode = 204; res.end(); });
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  t.after(() => srv.close());
  return { got, port: srv.address().port };
}

async function until(fn, ms = 8000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (fn()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return fn();
}

const metric = (text, name) => Number((text.match(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\d+)`, 'm')) ?? [0, -1])[1]);

test('a lockout writes an alert row and POSTs it to the webhook, with no personal data', async (t) => {
  const s = school(t, { more: [['dpo', 'dpo', 'dpo.lyon']] });
  const hook = await receiver(t);
  // the budget from the environment this time (COFFRE_GUARD_BUDGETS), the webhook from the flag
  process.env.COFFRE_GUARD_BUDGETS = 'staff=3/50';
  let srv;
  try {
    srv = await startServer(t, s.data, [...FAST_HASH, '--alert-webhook', `http://127.0.0.1:${hook.port}/coffre/alerts`]);
  } finally {
    delete process.env.COFFRE_GUARD_BUDGETS;
  }
  const c = await signIn(srv.port, s.accounts);
  const me = await request(srv.port, 'GET', '/api/v1/session', { cookie: c.office, from: '127.0.43.1' });
  const officeId = me.json.account.id;
  let r;
  for (let i = 1; i <= 4; i++)
    r = await request(srv.port, 'GET', `/api/v1/students/${s.st[i]}`, { cookie: c.office, from: '127.0.43.1' });
  assert.equal(r.status, 403);
  assert.match(r.json.type, /account-locked$/);
  // the webhook got it, from the background thread
  assert.ok(await until(() => hook.got.length >= 1), 'no webhook POST arrived');
  assert.equal(hook.got.length, 1);
  const w = hook.got[0];
  assert.equal(w.method, 'POST');
  assert.equal(w.url, '/coffre/alerts');
  assert.match(w.type, /application\/json/);
  const a = JSON.parse(w.body);
  assert.equal(a.rule, 'budget-1h');
  assert.equal(a.account, officeId);
  assert.equal(a.addr, '127.0.43.1');
  assert.equal(a.count, 4);
  assert.equal(a.limit, 3);
  assert.equal(a.academie, '10');
  assert.match(a.action, /principal locked, address blocked/);
  assert.match(a.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  // nothing about a person: no pupil id, name, INE, e-mail, address
  for (const x of [...s.st.filter(Boolean), 'ELEVE', 'Camille', ine(1), 'eleve1', 'rue des', s.E1])
    assert.ok(!w.body.includes(x), `webhook body names ${x}`);
  // the académie's admin and DPO list it; a teacher may not
  for (const who of ['admin', 'dpo']) {
    r = await request(srv.port, 'GET', '/api/v1/alerts', { cookie: c[who], from: '127.0.43.2' });
    assert.equal(r.status, 200, r.body);
    assert.equal(r.json.items.length, 1);
    assert.deepEqual(r.json.items[0], a);
    assert.equal(r.json.more, false);
  }
  r = await request(srv.port, 'GET', '/api/v1/alerts', { cookie: c.teacher, from: '127.0.43.3' });
  assert.equal(r.status, 403);
  r = await request(srv.port, 'GET', '/api/v1/alerts?page=x', { cookie: c.admin, from: '127.0.43.2' });
  assert.equal(r.status, 400);
  r = await request(srv.port, 'GET', '/metrics', { from: '127.0.43.4' });
  assert.equal(metric(r.body, 'coffre_alert_webhook_sent'), 1);
  assert.equal(metric(r.body, 'coffre_alert_webhook_failed'), 0);
  assert.equal(metric(r.body, 'coffre_guard_alerts_total'), 1);
  closeAgents();
  assert.equal(await srv.stop(), 0);
  // the row in the store: ids, rule, counts - no personal data
  const row = sqlite(join(s.data, 'coffre.db'), 'SELECT rule, lower(hex(account_id)), addr, count, limit_, action FROM alerts');
  assert.equal(row, `budget-1h|${officeId}|127.0.43.1|4|3|denied, principal locked, address blocked`);
  assert.equal(sqlite(join(s.data, 'coffre.db'), "SELECT count(*) FROM guard_blocks WHERE addr = '127.0.43.1'"), '1');

  // after a restart the address is still blocked (sign-in included), others are not
  srv = await startServer(t, s.data, FAST_HASH);
  r = await request(srv.port, 'POST', '/api/v1/login', { body: { login: s.accounts.teacher.login, password: STRONG }, from: '127.0.43.1' });
  assert.equal(r.status, 403, r.body);
  assert.match(r.json.type, /address-blocked$/);
  r = await request(srv.port, 'POST', '/api/v1/login', { body: { login: s.accounts.teacher.login, password: STRONG }, from: '127.0.43.5' });
  assert.equal(r.status, 200, r.body);
  closeAgents();
  assert.equal(await srv.stop(), 0);
});

test('a webhook that does not answer costs the request nothing; failures are counted', async (t) => {
  const s = school(t);
  // a port with nobody on it: take one, then close it
  const tmp = http.createServer();
  tmp.listen(0, '127.0.0.1');
  await once(tmp, 'listening');
  const dead = tmp.address().port;
  tmp.close();
  const srv = await startServer(t, s.data, [...FAST_HASH, '--guard-budgets', 'staff=2/50', '--alert-webhook', `http://127.0.0.1:${dead}/`]);
  const c = await signIn(srv.port, s.accounts);
  const t0 = Date.now();
  let r;
  for (let i = 1; i <= 3; i++)
    r = await request(srv.port, 'GET', `/api/v1/students/${s.st[i]}`, { cookie: c.office, from: '127.0.44.1' });
  assert.match(r.json.type, /account-locked$/);
  assert.ok(Date.now() - t0 < 2000, 'the lockout waited for the webhook');
  let m = '';
  for (let i = 0; i < 100 && metric(m, 'coffre_alert_webhook_failed') !== 1; i++) {
    await new Promise((res) => setTimeout(res, 100));
    m = (await request(srv.port, 'GET', '/metrics', { from: '127.0.44.2' })).body;
  }
  assert.equal(metric(m, 'coffre_alert_webhook_failed'), 1);
  assert.equal(metric(m, 'coffre_alert_webhook_sent'), 0);
  closeAgents();
  assert.equal(await srv.stop(), 0);
  assert.match(srv.log, /"msg":"alerts: webhook failed","rule":"budget-1h","why":"connect refused"/);
  // the alert is in the store all the same
  assert.equal(sqlite(join(s.data, 'coffre.db'), 'SELECT count(*) FROM alerts'), '1');
});

test('guard windows from flags and COFFRE_GUARD_*; bad values are usage errors', async (t) => {
  const s = school(t);
  // a 2-second short window: 3 distinct pupils, then 3 more once it slid
  const srv = await startServer(t, s.data, [...FAST_HASH, '--guard-budgets', 'staff=3/50', '--guard-window-short-s', '2']);
  const c = await signIn(srv.port, s.accounts);
  const get = (i) => request(srv.port, 'GET', `/api/v1/students/${s.st[i]}`, { cookie: c.office, from: '127.0.45.1' });
  for (let i = 1; i <= 3; i++) assert.equal((await get(i)).status, 200);
  await new Promise((res) => setTimeout(res, 2200));
  for (let i = 4; i <= 6; i++) assert.equal((await get(i)).status, 200);
  const r = await get(7);
  assert.match(r.json.type, /account-locked$/);
  closeAgents();
  assert.equal(await srv.stop(), 0);
  const bad = (args, env = {}) => coffre(['serve', '--data', s.data, '--listen', '127.0.0.1:0', ...args], { env: { ...process.env, ...env } });
  let x = bad(['--guard-window-short-s', '0']);
  assert.equal(x.code, 2, x.err);
  x = bad(['--guard-window-short-s', '7200', '--guard-window-long-s', '3600']);
  assert.equal(x.code, 2, x.err);
  assert.match(x.err, /at least/);
  x = bad([], { COFFRE_GUARD_BLOCK_S: 'abc' });
  assert.equal(x.code, 2, x.err);
  x = bad([], { COFFRE_GUARD_WINDOW_LONG_S: '999999999' });
  assert.equal(x.code, 2, x.err);
  for (const url of ['https://alerts.example.org/hook', 'http://192.0.2.1/hook', 'ftp://127.0.0.1/', 'http://user@127.0.0.1/', 'http://127.0.0.1:99999/'])
    assert.equal(bad(['--alert-webhook', url]).code, 2, url);
  x = bad(['--alert-webhook', 'https://alerts.example.org/hook']);
  assert.match(x.err, /https:\/\/ needs a TLS client/);
});
