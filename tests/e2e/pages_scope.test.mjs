// pages_scope.test.mjs - the incident console in headless Chromium: a DPO
// signs in with TOTP (codes by oathtool), runs a scope of a teacher's
// reads, sees exactly the pupils the teacher was served, and downloads the
// people to notify as CSV (a minor's guardians); every opening audited.
// A teacher is refused the console; the JSON side refuses a non-DPO the
// people file.  Loopback only.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { coffre, tempDir } from './helpers.mjs';
import { startServer, request, cookieOf, closeAgents, FAST_HASH, STRONG } from './server.mjs';
import { browser, playwright, a11yProblems, totp, shots } from './browser.mjs';

const ok = (r) => { assert.equal(r.code, 0, r.err); return r.out.trim(); };
const stepNow = () => Math.floor(Date.now() / 1000 / 30);

function sqlite(db, sql) {
  const r = spawnSync('sqlite3', [db, sql], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}

test('a DPO signs in with TOTP, runs a scope in the console and downloads the people to notify', async (t) => {
  if (!(await playwright())) {
    t.skip('playwright-core not installed (make test runs npm ci)');
    return;
  }
  t.after(closeAgents);
  const data = join(tempDir(t), 'data');
  ok(coffre(['init', '--data', data, '--academie', '10']));
  ok(coffre(['demo-data', '--data', data, '--establishments', '1', '--students-per', '60', '--guardians-per', '1']));
  const db = join(data, 'coffre.db');
  const teacherId = sqlite(db, 'SELECT lower(hex(p0)) FROM teachings ORDER BY rid LIMIT 1');
  const prov = (args) => {
    const out = ok(coffre(['account', 'provision', '--data', data, ...args]));
    return { login: out.match(/^login (\S+)/m)[1], code: out.match(/activation code (\S+)/)[1] };
  };
  const teacher = prov(['--role', 'teacher', '--person', teacherId]);
  const dpo = prov(['--role', 'dpo', '--academie', '10', '--login', 'dpo.lyon']);
  const srv = await startServer(t, data, FAST_HASH);
  const port = srv.port;
  const base = `http://localhost:${port}`;
  const activate = async (a, from) => {
    const r = await request(port, 'POST', '/api/v1/activate', { body: { login: a.login, code: a.code, password: STRONG }, from });
    assert.equal(r.status, 200, r.body);
    return cookieOf(r);
  };

  // the teacher reads its classes: the ground truth
  const ct = await activate(teacher, '127.0.50.1');
  const served = new Set();
  for (const cls of sqlite(db, `SELECT lower(hex(p1)) FROM teachings WHERE p0 = x'${teacherId}'`).split('\n')) {
    const r = await request(port, 'GET', `/api/v1/classes/${cls}/students`, { cookie: ct, from: '127.0.50.1' });
    assert.equal(r.status, 200, r.body);
    for (const p of r.json.items) served.add(p.id);
  }
  assert.ok(served.size > 0);
  // a teacher may not run a scope, nor get the people file
  let r = await request(port, 'POST', '/api/v1/scope', { body: { actor: teacher.login }, cookie: ct, from: '127.0.50.1' });
  assert.equal(r.status, 403, r.body);
  r = await request(port, 'POST', '/api/v1/scope/people', { body: { actor: teacher.login }, cookie: ct, from: '127.0.50.1' });
  assert.equal(r.status, 403, r.body);

  // the DPO enrolls TOTP (API), then uses the console (browser)
  const cd = await activate(dpo, '127.0.0.1');
  const e = await request(port, 'POST', '/api/v1/mfa/totp/enroll', { body: {}, cookie: cd, from: '127.0.0.1' });
  assert.equal(e.status, 200, e.body);
  const step = stepNow();
  r = await request(port, 'POST', '/api/v1/mfa/totp/confirm', { body: { code: totp(e.json.secret, step * 30) }, cookie: cd, from: '127.0.0.1' });
  assert.equal(r.status, 200, r.body);
  // the JSON side: bad input and nothing matching are problems, not pages
  r = await request(port, 'POST', '/api/v1/scope', { body: {}, cookie: cd, from: '127.0.0.1' });
  assert.equal(r.status, 400, r.body);
  r = await request(port, 'POST', '/api/v1/scope', { body: { actor: teacher.login, from: '2031-01-01' }, cookie: cd, from: '127.0.0.1' });
  assert.equal(r.status, 404, r.body);
  assert.match(r.json.type, /no-entries$/);
  r = await request(port, 'POST', '/api/v1/scope', { body: { actor: teacher.login }, cookie: cd, from: '127.0.0.1' });
  assert.equal(r.status, 200, r.body);
  assert.deepEqual(r.json.people_list.filter((p) => p.served_in_clear).map((p) => p.id).sort(), [...served].sort());

  const ctx = await browser(t, { locale: 'fr-FR' });
  const page = await ctx.newPage();
  await page.goto(`${base}/signin`);
  await page.fill('#login', dpo.login);
  await page.fill('#password', STRONG);
  await page.click('button[type=submit]');
  await page.waitForURL(`${base}/mfa/challenge`);
  await page.fill('#code', totp(e.json.secret, Math.max(step + 1, stepNow()) * 30));
  await page.click('button[type=submit]');
  await page.waitForURL(`${base}/account`);

  await page.goto(`${base}/console`);
  assert.deepEqual(await a11yProblems(page), []);
  // nothing matching: the form again with the message
  await page.fill('#actor', teacher.login);
  await page.fill('#from', '2031-01-01');
  await page.click('form[action="/console"] button[type=submit]');
  assert.match(await page.textContent('#form-err'), /Aucune entrée du journal/);
  await page.fill('#from', '');
  await page.click('form[action="/console"] button[type=submit]');
  await page.waitForSelector('#summary');
  assert.equal(Number(await page.textContent('#people')), served.size);
  assert.equal(Number(await page.textContent('#clear')), served.size);
  assert.ok((await page.textContent('#summary')).includes(`acct:`));
  await shots(page, 'console');

  const before = Number(sqlite(join(data, 'audit.db'), "SELECT count(*) FROM entries WHERE action = 'scope.people'"));
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
  const csv = readFileSync(await download.path(), 'utf8').trim().split('\n');
  assert.match(csv[0], /^person_id,category,establishment_uai,notify,recipient_id/);
  const rows = csv.slice(1).map((l) => JSON.parse(`[${l}]`));
  assert.deepEqual([...new Set(rows.map((x) => x[0]))].sort(), [...served].sort());
  for (const row of rows) assert.ok(['guardian', 'self', 'none-on-record'].includes(row[3]));
  assert.ok(rows.some((x) => x[3] === 'guardian'), 'minors: their guardians');
  closeAgents();
  assert.equal(await srv.stop(), 0);
  const opened = Number(sqlite(join(data, 'audit.db'), "SELECT count(*) FROM entries WHERE action = 'scope.people' AND outcome = 'ok'"));
  assert.ok(opened > before + served.size, 'every opening is audited');
  assert.equal(coffre(['audit', 'verify', '--data', data]).code, 0);
});
