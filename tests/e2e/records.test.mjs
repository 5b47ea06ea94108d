// records.test.mjs - the records API against a real server: every read
// goes guard -> policy -> open -> audit.  Each role reads what the policy
// table allows, with the fields it allows, and nothing else; a scraper is
// locked out within its budget while a legitimate teacher goes on; an
// administrator unlocks with a reason.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { coffre, tempDir } from './helpers.mjs';
import { school, signIn, ine, ok, sqlite } from './school.mjs';
import { startServer, request, cookieOf, provisionAdmin, closeAgents, FAST_HASH, STRONG } from './server.mjs';

test('records API: each role reads what the policy table allows, with its fields only', async (t) => {
  const s = school(t);
  const srv = await startServer(t, s.data, FAST_HASH);
  const c = await signIn(srv.port, s.accounts);
  // each role from its own address: the guard blocks an address with its account
  const addr = { student: '127.0.31.1', guardian: '127.0.31.2', teacher: '127.0.31.3', office: '127.0.31.4', admin: '127.0.31.5' };
  const get = (who, path) => request(srv.port, 'GET', path, { cookie: c[who], from: addr[who] });

  // a student: self, all fields; nobody else (a pupil's budget is one
  // person: asking for another pupil locks the account at once)
  let r = await get('student', `/api/v1/students/${s.st[1]}`);
  assert.equal(r.status, 200, r.body);
  assert.equal(r.json.family_name, 'ELEVEA');
  assert.ok(r.json.address && r.json.birth_date);
  const locked = await get('student', `/api/v1/students/${s.st[2]}`);
  assert.equal(locked.status, 403);
  assert.match(locked.json.type, /account-locked$/);
  const blocked = await get('student', `/api/v1/students/${s.st[1]}`);
  assert.equal(blocked.status, 403);
  assert.match(blocked.json.type, /address-blocked$/);
  assert.equal((await request(srv.port, 'GET', `/api/v1/students/${s.st[1]}`,
    { cookie: c.student, from: '127.0.31.8' })).status, 401);           // its session is gone
  // a guardian: their child (and the list of their children), no other pupil
  assert.equal((await get('guardian', `/api/v1/students/${s.st[1]}`)).status, 200);
  assert.equal((await get('guardian', `/api/v1/students/${s.st[2]}`)).status, 403);
  r = await get('guardian', `/api/v1/children/${s.guardian}`);
  assert.equal(r.status, 200, r.body);
  assert.deepEqual(r.json.items.map((x) => x.id), [s.st[1]]);
  // a teacher: pupils of the class they teach, without address or birth date
  r = await get('teacher', `/api/v1/students/${s.st[2]}`);
  assert.equal(r.status, 200, r.body);
  assert.equal(r.json.address, undefined);
  assert.equal(r.json.birth_date, undefined);
  assert.equal(r.json.family_name, 'ELEVEB');
  assert.equal((await get('teacher', `/api/v1/students/${s.st[6]}`)).status, 403);
  r = await get('teacher', `/api/v1/classes/${s.cls['6A']}/students`);
  assert.equal(r.status, 200, r.body);
  assert.equal(r.json.items.length, 5);
  assert.ok(r.json.items.every((x) => x.address === undefined));
  assert.equal((await get('teacher', `/api/v1/classes/${s.cls['6B']}/students`)).status, 403);
  r = await request(srv.port, 'GET', `/api/v1/students?ine=${ine(3)}`, { cookie: c.teacher, from: addr.teacher });
  assert.equal(r.status, 200, r.body);
  assert.equal(r.json.id, s.st[3]);
  r = await get('teacher', `/api/v1/guardians/${s.guardian}`);
  assert.equal(r.status, 200, r.body);
  assert.equal(r.json.phone, '0601020304');
  // school staff: their establishment, all fields; not the other one
  r = await get('office', `/api/v1/students/${s.st[7]}`);
  assert.equal(r.status, 200);
  assert.ok(r.json.address);
  assert.equal((await get('office', `/api/v1/students/${s.st[11]}`)).status, 403);
  r = await get('office', `/api/v1/establishments/${s.E1}/staff`);
  assert.equal(r.status, 200, r.body);
  assert.equal(r.json.items.length, 2);
  assert.equal((await get('office', `/api/v1/establishments/${s.E2}/staff`)).status, 403);
  // an administrator reads no record
  assert.equal((await get('admin', `/api/v1/students/${s.st[1]}`)).status, 403);
  // not ours / malformed ids: a clear 4xx
  assert.equal((await get('office', '/api/v1/students/00000000000000000000000000000000')).status, 404);
  assert.equal((await get('office', '/api/v1/students/nope')).status, 404);
  assert.equal((await request(srv.port, 'GET', '/api/v1/students?ine=0999000001A', { cookie: c.office, from: addr.office })).status, 404);
  // without a session: nothing
  assert.equal((await request(srv.port, 'GET', `/api/v1/students/${s.st[1]}`, { from: '127.0.31.9' })).status, 401);
  closeAgents();
  assert.equal(await srv.stop(), 0);
  // the trail names the subjects and the fields, never their values
  const rows = sqlite(join(s.data, 'audit.db'), "SELECT subject, fields, outcome FROM entries WHERE action = 'student.read'");
  assert.match(rows, new RegExp(`${s.st[2]}\\|ine,family_name,given_names,email\\|ok`));
  assert.match(rows, /\|denied/);
  assert.doesNotMatch(sqlite(join(s.data, 'audit.db'), 'SELECT * FROM entries'), /ELEVE|Camille|rue des/);
  assert.equal(coffre(['audit', 'verify', '--data', s.data]).code, 0);
});

test('scrape: probing INEs locks the office account within its budget; a teacher goes on; unlock with a reason', async (t) => {
  const s = school(t);
  const srv = await startServer(t, s.data, FAST_HASH);
  const c = await signIn(srv.port, s.accounts);
  let served = 0, locked = false, tries = 0;
  for (let i = 100; i < 5100 && !locked; i++) {
    tries++;
    const r = await request(srv.port, 'GET', `/api/v1/students?ine=${ine(i)}`, { cookie: c.office, from: '127.0.32.1' });
    if (r.status === 200) served++;
    if (r.status === 403 && r.json.type.endsWith('/account-locked')) locked = true;
    else if (r.status === 401) locked = true;
  }
  console.log(`# scrape by INE guessing: ${tries} probes, ${served} records served before the lockout`);
  assert.ok(locked, 'the guard locked the account');
  assert.ok(tries < 5000);
  // the session is dead, the account locked, the address blocked
  assert.equal((await request(srv.port, 'GET', `/api/v1/students/${s.st[7]}`, { cookie: c.office, from: '127.0.32.2' })).status, 401);
  const again = await request(srv.port, 'POST', '/api/v1/login',
    { body: { login: s.accounts.office.login, password: STRONG }, from: '127.0.32.3' });
  assert.equal(again.status, 401);
  assert.equal((await request(srv.port, 'GET', '/api/v1/session', { cookie: c.teacher, from: '127.0.32.1' })).status, 403);
  // a legitimate teacher elsewhere goes on
  assert.equal((await request(srv.port, 'GET', `/api/v1/students/${s.st[1]}`, { cookie: c.teacher, from: '127.0.33.1' })).status, 200);
  // the administrator unlocks with a reason code; the account signs in again
  const bad = await request(srv.port, 'POST', '/api/v1/accounts/unlock',
    { body: { login: s.accounts.office.login, reason: 'Jean a appelé' }, cookie: c.admin, from: '127.0.33.2' });
  assert.equal(bad.status, 400);
  const un = await request(srv.port, 'POST', '/api/v1/accounts/unlock',
    { body: { login: s.accounts.office.login, reason: 'verified-with-user' }, cookie: c.admin, from: '127.0.33.2' });
  assert.equal(un.status, 200, un.body);
  await new Promise((res) => setTimeout(res, 1100));       // the failed sign-in above waits 1 s
  const back = await request(srv.port, 'POST', '/api/v1/login',
    { body: { login: s.accounts.office.login, password: STRONG }, from: '127.0.33.3' });
  assert.equal(back.status, 200, back.body);
  closeAgents();
  assert.equal(await srv.stop(), 0);
  const trail = sqlite(join(s.data, 'audit.db'), "SELECT action, fields, outcome FROM entries WHERE outcome IN ('locked') OR action = 'account.unlock'");
  // the lockout names its rule (for coffre scope --rule), nothing of what was not served
  assert.match(trail, /student\.find\|rule:budget-(1h|24h)\|locked/);
  assert.match(trail, /account\.unlock\|reason:verified-with-user\|ok/);
});

test('canary: the first read of a canary pupil locks the reader at once, within budget', async (t) => {
  const s = school(t);
  const out = coffre(['canary', 'add', '--data', s.data, '--establishment', '0999001W', '--count', '3']);
  assert.equal(out.code, 0, out.err);
  // which pupils are canaries is sealed; here we find them as the pupils in no class
  const canaries = sqlite(join(s.data, 'coffre.db'), 'SELECT hex(id) FROM students WHERE p1 IS NULL')
    .split('\n').map((x) => x.toLowerCase());
  assert.equal(canaries.length, 3);
  const srv = await startServer(t, s.data, FAST_HASH);
  const c = await signIn(srv.port, s.accounts);
  // within budget, an ordinary read is served, and so is a canary-free page
  assert.equal((await request(srv.port, 'GET', `/api/v1/students/${s.st[7]}`, { cookie: c.office, from: '127.0.34.1' })).status, 200);
  // a canary: refused, the account locked, at the first touch
  const r = await request(srv.port, 'GET', `/api/v1/students/${canaries[0]}`, { cookie: c.office, from: '127.0.34.1' });
  assert.equal(r.status, 403);
  assert.match(r.json.type, /account-locked$/);
  assert.doesNotMatch(r.body, /ELEVE|Camille/);
  assert.equal((await request(srv.port, 'GET', `/api/v1/students/${s.st[7]}`, { cookie: c.office, from: '127.0.34.9' })).status, 401);
  // the teacher, reading her own class, is untouched
  assert.equal((await request(srv.port, 'GET', `/api/v1/classes/${s.cls['6A']}/students`, { cookie: c.teacher, from: '127.0.34.2' })).status, 200);
  closeAgents();
  assert.equal(await srv.stop(), 0);
  assert.match(sqlite(join(s.data, 'coffre.db'), "SELECT locked_reason FROM accounts WHERE state = 'locked'"), /guard:canary/);
  // the store says nothing of who is a canary but the sealed list
  assert.doesNotMatch(sqlite(join(s.data, 'coffre.db'), 'SELECT hex(fields) FROM canary_sets'), new RegExp(canaries[0], 'i'));
});

test('guard flags: a budget set on the command line is enforced; dry run only alerts', async (t) => {
  const s = school(t);
  const readAll = async (srv, cookie, from) => {
    let served = 0;
    for (let i = 1; i <= 10; i++) {
      const r = await request(srv.port, 'GET', `/api/v1/students/${s.st[i]}`, { cookie, from });
      if (r.status !== 200) return { served, status: r.status, type: r.json?.type };
      served++;
    }
    return { served, status: 200 };
  };
  // school staff may read 5 distinct people an hour: the 6th locks
  let srv = await startServer(t, s.data, [...FAST_HASH, '--guard-budgets', 'staff=5/50,teacher=600/1200']);
  let c = await signIn(srv.port, s.accounts);
  let r = await readAll(srv, c.office, '127.0.35.1');
  assert.equal(r.served, 5);
  assert.match(r.type, /account-locked$/);
  closeAgents();
  assert.equal(await srv.stop(), 0);
  // the same with --guard-dry-run 1 (after an unlock): all ten served, alerts logged
  assert.equal(coffre(['account', 'unlock', '--data', s.data, '--login', s.accounts.office.login,
    '--reason', 'false-positive']).code, 0);
  srv = await startServer(t, s.data, [...FAST_HASH, '--guard-budgets', 'staff=5/50', '--guard-dry-run', '1']);
  const login = await request(srv.port, 'POST', '/api/v1/login',
    { body: { login: s.accounts.office.login, password: STRONG }, from: '127.0.35.2' });
  assert.equal(login.status, 200, login.body);
  r = await readAll(srv, cookieOf(login), '127.0.35.2');
  assert.equal(r.served, 10);
  closeAgents();
  assert.equal(await srv.stop(), 0);
  assert.match(srv.log, /"rule":"budget-1h"/);
  // bad flags are usage errors
  const bad = coffre(['serve', '--data', s.data, '--guard-budgets', 'teacher=9/3']);
  assert.equal(bad.code, 2);
});

test('lists come in pages of 30: page and more tell the rest; a bad page is a 400', async (t) => {
  const s = school(t);
  ok(coffre(['class', 'add', '--data', s.data, '--establishment', '0999001W', '--name', '6C']));
  for (let i = 20; i < 55; i++)
    ok(coffre(['student', 'add', '--data', s.data, '--establishment', '0999001W', '--class', '6C', '--ine', ine(i),
      '--family-name', 'PAGE', '--given-names', 'Camille', '--birth-date', '2013-03-03']));
  ok(coffre(['class', 'assign', '--data', s.data, '--establishment', '0999001W', '--class', '6C', '--staff-email', 'prof@ac.invalid']));
  const c6 = sqlite(join(s.data, 'coffre.db'), 'SELECT lower(hex(p1)) FROM students GROUP BY p1 HAVING count(*) = 35');
  const srv = await startServer(t, s.data, FAST_HASH);
  const c = await signIn(srv.port, s.accounts);
  const get = (q) => request(srv.port, 'GET', `/api/v1/classes/${c6}/students${q}`, { cookie: c.teacher, from: '127.0.36.1' });
  let r = await get('');
  assert.equal(r.status, 200, r.body);
  assert.equal(r.json.items.length, 30);
  assert.equal(r.json.more, true);
  r = await get('?page=1');
  assert.equal(r.json.items.length, 5);
  assert.equal(r.json.more, false);
  const ids = new Set([...(await get('?page=0')).json.items, ...r.json.items].map((x) => x.id));
  assert.equal(ids.size, 35);
  assert.equal((await get('?page=2')).json.items.length, 0);
  assert.equal((await get('?page=-1')).status, 400);
  assert.equal((await get('?page=x')).status, 400);
  closeAgents();
  assert.equal(await srv.stop(), 0);
});
