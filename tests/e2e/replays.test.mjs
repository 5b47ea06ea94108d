// replays.test.mjs - DESIGN.md section 1's read incidents against a real
// server with an académie of 50 establishments x 500 pupils: (B) bulk
// export by a school-staff account, (C) a directory scrape, (E) a stolen
// teacher account reading across the académie; and the no-false-alarm
// days of a teacher and a school office.  Each prints how many records
// were served before the lockout.  Bounded in count; loopback only.
// The production second-factor policy (MFA_DEFAULT) is on: every account
// here is staff or a teacher and enrolls TOTP at activation, so each
// replay is what a holder of the account with its factor can do (an
// insider, or a thief who also has the session or the code: with the
// password alone they get nothing, see attacks.test.mjs); the guard is
// what bounds them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import http from 'node:http';
import { once } from 'node:events';
import { coffre, tempDir } from './helpers.mjs';
import { startServer, request, cookieOf, closeAgents, FAST_HASH, STRONG, MFA_DEFAULT } from './server.mjs';
import { enrollTotp } from './totp.mjs';

const ine = (i) => {
  const n = 999000000 + i;
  return String(n).padStart(10, '0') + 'ABCDEFGHJKLMNPRSTUVWXYZ'[n % 23];
};

function sqlite(db, sql) {
  const r = spawnSync('sqlite3', [db, sql], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}

let shared = null;
// One académie for every replay (each replay gets its own accounts).
function academy(t) {
  if (shared) return shared;
  const data = join(tempDir(t), 'data');
  assert.equal(coffre(['init', '--data', data, '--academie', '10']).code, 0);
  const d = coffre(['demo-data', '--data', data, '--establishments', '50', '--students-per', '500', '--guardians-per', '1']);
  assert.equal(d.code, 0, d.err);
  const db = join(data, 'coffre.db');
  const first = "(SELECT id FROM establishments ORDER BY rid LIMIT 1)";
  const teachers = sqlite(db, `SELECT DISTINCT lower(hex(t.p0)) FROM teachings t JOIN staff s ON s.id = t.p0 WHERE s.p0 = ${first} ORDER BY t.rid`).split('\n');
  const office = sqlite(db, `SELECT lower(hex(id)) FROM staff WHERE p0 = ${first} AND id NOT IN (SELECT p0 FROM teachings) ORDER BY rid`).split('\n');
  const accounts = [];
  const add = (role, person) => {
    const p = coffre(['account', 'provision', '--data', data, '--role', role, '--person', person]);
    assert.equal(p.code, 0, p.err);
    accounts.push({ role, login: p.out.match(/^login (\S+)/m)[1], code: p.out.match(/activation code (\S+)/)[1], person });
    return accounts[accounts.length - 1];
  };
  shared = {
    data,
    teacherB: add('teacher', teachers[0]), teacherE: add('teacher', teachers[1]), teacherDay: add('teacher', teachers[2]),
    officeB: add('staff', office[0]), officeC: add('staff', office[1] ?? office[0]), officeDay: add('staff', teachers[3]),
    classesOf: (person) => sqlite(db, `SELECT lower(hex(p1)) FROM teachings WHERE p0 = x'${person}'`).split('\n'),
  };
  return shared;
}

async function activate(port, a, from) {
  const r = await request(port, 'POST', '/api/v1/activate', { body: { login: a.login, code: a.code, password: STRONG }, from });
  assert.equal(r.status, 200, r.body);
  assert.equal(r.json.mfa, 'enroll');
  await enrollTotp(port, cookieOf(r), from);
  return cookieOf(r);
}

test('replays B, C, E: each attacker is locked out within one budget; normal days never trip the guard', async (t) => {
  const a = academy(t);
  // the alert webhook: a receiver on 127.0.0.1 keeping every POST
  const hooks = [];
  const rx = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => { hooks.push(body); res.statusCode = 204; res.end(); });
  });
  rx.listen(0, '127.0.0.1');
  await once(rx, 'listening');
  t.after(() => rx.close());
  const srv = await startServer(t, a.data, [...FAST_HASH, ...MFA_DEFAULT, '--alert-webhook', `http://127.0.0.1:${rx.address().port}/alerts`]);
  const port = srv.port;
  const figures = [];

  // No false alarm, teacher: three classes, each listed 20 times and each
  // pupil and each pupil's guardian read 20 times across the day.
  {
    const cookie = await activate(port, a.teacherDay, '127.0.40.1');
    let served = 0;
    for (let round = 0; round < 20; round++)
      for (const cls of a.classesOf(a.teacherDay.person)) {
        const r = await request(port, 'GET', `/api/v1/classes/${cls}/students`, { cookie, from: '127.0.40.1' });
        assert.equal(r.status, 200, r.body);
        served += r.json.items.length;
        if (round % 5 === 0)
          for (const p of r.json.items.slice(0, 10)) {
            const g = await request(port, 'GET', `/api/v1/students/${p.id}`, { cookie, from: '127.0.40.1' });
            assert.equal(g.status, 200, g.body);
          }
      }
    figures.push(`teacher's day: ${served} pupil reads, never refused`);
  }
  // No false alarm, school office: every pupil of the establishment by INE, twice.
  {
    const cookie = await activate(port, a.officeDay, '127.0.40.2');
    let served = 0;
    for (let round = 0; round < 2; round++)
      for (let i = 0; i < 500; i++) {
        const r = await request(port, 'GET', `/api/v1/students?ine=${ine(i)}`, { cookie, from: '127.0.40.2' });
        assert.equal(r.status, 200, `${i}: ${r.body}`);
        served++;
      }
    figures.push(`school office's day: ${served} pupil reads, never refused`);
  }
  assert.equal(hooks.length, 0, 'a normal day raised an alert');

  // B: a school-staff account pulls everything it can, INE after INE
  // across the académie (its own 500 pupils are in its scope).
  const runAttack = async (label, cookie, from, next, max) => {
    let served = 0, tries = 0;
    for (; tries < max; tries++) {
      const r = await request(port, 'GET', next(tries), { cookie, from });
      if (r.status === 200) served++;
      if ((r.status === 403 && /account-locked|address-blocked/.test(r.json?.type ?? '')) || r.status === 401) break;
    }
    figures.push(`${label}: ${tries} requests, ${served} records served before the lockout`);
    return { served, tries };
  };
  const b = await runAttack('B (bulk export, school staff)', await activate(port, a.officeB, '127.0.41.1'), '127.0.41.1',
    (i) => `/api/v1/students?ine=${ine(i)}`, 25000);
  assert.ok(b.tries < 25000, 'B was stopped');
  assert.ok(b.served <= 5000, 'B got at most one budget');
  // C: a directory scrape: guessed e-mails, then walked ids
  const c = await runAttack('C (directory scrape)', await activate(port, a.officeC, '127.0.42.1'), '127.0.42.1',
    (i) => (i % 2 ? `/api/v1/staff?email=prenom.nom.${i}@ac-demo.invalid` : `/api/v1/staff/${(i * 7919).toString(16).padStart(32, '0')}`), 20000);
  assert.ok(c.tries < 20000, 'C was stopped');
  // E: a stolen teacher account, after a normal morning, reads across the académie
  const eCookie = await activate(port, a.teacherE, '127.0.43.1');
  for (const cls of a.classesOf(a.teacherE.person))
    assert.equal((await request(port, 'GET', `/api/v1/classes/${cls}/students`, { cookie: eCookie, from: '127.0.43.1' })).status, 200);
  const e = await runAttack('E (stolen teacher account)', eCookie, '127.0.43.1', (i) => `/api/v1/students?ine=${ine(i)}`, 25000);
  assert.ok(e.tries < 25000, 'E was stopped');
  assert.ok(e.served <= 1200, 'E got at most one teacher budget');
  for (const f of figures) console.log(`# ${f}`);
  // one alert per attacker, in the store and at the webhook, naming no one
  for (let i = 0; i < 100 && hooks.length < 3; i++) await new Promise((res) => setTimeout(res, 50));
  assert.equal(hooks.length, 3);
  for (const h of hooks) {
    const al = JSON.parse(h);
    assert.match(al.rule, /^(budget|address)-(1h|24h)$/);
    assert.match(al.account, /^[0-9a-f]{32}$/);
    assert.doesNotMatch(h, /ine|INE|@ac-demo|family|given|\d{10}[A-Z]/);
  }
  closeAgents();
  assert.equal(await srv.stop(), 0);
  const locked = sqlite(join(a.data, 'coffre.db'), "SELECT count(*) FROM accounts WHERE state = 'locked'");
  assert.equal(locked, '3');
  assert.equal(sqlite(join(a.data, 'coffre.db'), 'SELECT count(*) FROM alerts'), '3');
  assert.equal(coffre(['audit', 'verify', '--data', a.data]).code, 0);
});
