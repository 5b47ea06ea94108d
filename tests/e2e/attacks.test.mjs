// attacks.test.mjs - replays of DESIGN.md section 1's incidents against a
// real server: (A) the Educonnect dormant-account hijack, and credential
// stuffing.  Each shows the attack failing and the same request
// succeeding for the legitimate user.  Both run the production
// second-factor policy (MFA_DEFAULT): staff, teachers and administrators
// must have one, students and guardians may.  Every loop is bounded in count and
// time, and all traffic stays on 127.0.0.0/8.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { randomBytes, randomInt } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { coffre, tempDir } from './helpers.mjs';
import { startServer, request, cookieOf, provisionAdmin, closeAgents, FAST_HASH, STRONG,
         MFA_DEFAULT } from './server.mjs';
import { enrollTotp, verifyTotp } from './totp.mjs';

const ALPHABET = '23456789ABCDEFGHJKLMNPQRSTUVWXYZ';
const guessCode = () => {
  let s = '';
  for (let i = 0; i < 12; i++) s += ALPHABET[randomInt(32)] + (i % 4 === 3 && i < 11 ? '-' : '');
  return s;
};

function readCodes(path) {
  return readFileSync(path, 'utf8').trim().split('\n').map((l) => {
    const [login, code] = l.split('\t');
    return { login, code };
  });
}

function sqlite(db, sql) {
  const r = spawnSync('sqlite3', [db, sql], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}

// Signs in, waiting out the backoff as told (at most `tries` times, until
// `deadline`); returns the last answer.  Each attempt on its own
// connection: a kept-alive one may have been closed by the server while
// this waited.
async function loginPatiently(port, login, password, from, deadline, tries = 8) {
  let r;
  for (let n = 0; n < tries; n++) {
    r = await request(port, 'POST', '/api/v1/login', { body: { login, password }, from, headers: { Connection: 'close' } });
    if (r.status !== 429 || Date.now() >= deadline) return r;
    await new Promise((res) => setTimeout(res, Math.max(0, Math.min(1000 * Number(r.headers['retry-after'] || 1),
      deadline - Date.now()))));
  }
  return r;
}

// Runs `workers` loops until `deadline` or until next() returns null.
async function swarm(workers, deadline, next, fire) {
  await Promise.all(Array.from({ length: workers }, async (_, w) => {
    for (;;) {
      if (Date.now() > deadline) return;
      const job = next(w);
      if (job === null) return;
      await fire(job, w);
    }
  }));
}

test('replay A (Educonnect): 1,000 dormant accounts, 50 guessing addresses: none taken over', async (t) => {
  const root = tempDir(t);
  const data = join(root, 'data');
  assert.equal(coffre(['init', '--data', data, '--academie', '10']).code, 0);
  assert.equal(coffre(['demo-data', '--data', data, '--establishments', '1', '--students-per', '1000',
    '--guardians-per', '0']).code, 0);
  const codesFile = join(root, 'codes.tsv');
  const p = coffre(['account', 'provision', '--data', data, '--role', 'student', '--establishment', '0990000M',
    '--all', '1', '--out', codesFile]);
  assert.equal(p.code, 0, p.err);
  const codes = readCodes(codesFile);
  assert.equal(codes.length, 1000);
  const admin = provisionAdmin(data);
  let srv = await startServer(t, data, [...FAST_HASH, ...MFA_DEFAULT]);

  // The attacker knows the logins (they follow first.last) of the first 800
  // accounts and guesses codes from 50 addresses for a bounded run.
  const RUN_MS = 12000, ADDRESSES = 50;
  const deadline = Date.now() + RUN_MS;
  const stats = { 200: 0, 401: 0, 429: 0, other: 0 };
  const perAddress = new Array(ADDRESSES).fill(0);
  let sent = 0;
  await swarm(ADDRESSES, deadline, () => (sent < 20000 ? sent++ : null), async (_, w) => {
    const victim = codes[randomInt(800)];
    const r = await request(srv.port, 'POST', '/api/v1/activate',
      { body: { login: victim.login, code: guessCode(), password: STRONG }, from: `127.0.8.${w + 1}` });
    stats[r.status in stats ? r.status : 'other']++;
    if (r.status !== 429) perAddress[w]++;
    if (r.status === 429) await new Promise((res) => setTimeout(res, Math.min(1000 * Number(r.headers['retry-after'] || 1), 2000)));
  });
  // The backoff bounds what was checked: per address, 20 free failures then
  // waits of 1, 2, 4, 8 ... s; per login, 1, 2, 4 ... s.
  const bound = ADDRESSES * (20 + Math.ceil(Math.log2(RUN_MS / 1000)) + 2);
  console.log(`# replay A: ${sent} requests in ${RUN_MS / 1000} s from ${ADDRESSES} addresses: ` +
              `${stats[401]} codes checked (bound ${bound}), ${stats[429]} refused by the backoff, ` +
              `${stats[200]} accounts taken over; at most ${Math.max(...perAddress)} checks per address`);
  assert.equal(stats[200], 0, 'no account taken over');
  assert.equal(stats.other, 0);
  assert.ok(stats[401] <= bound, `${stats[401]} checks exceed the backoff bound ${bound}`);
  assert.ok(stats[429] > 0, 'the backoff engaged');

  // The legitimate student (a login the attacker never tried) activates.
  const legit = codes[900];
  const ok = await request(srv.port, 'POST', '/api/v1/activate',
    { body: { login: legit.login, code: legit.code, password: STRONG }, from: '127.0.9.1' });
  assert.equal(ok.status, 200, ok.body);

  // The ministry's response, 1: reset every code (CLI, server stopped).
  closeAgents();
  assert.equal(await srv.stop(), 0);
  const newFile = join(root, 'new-codes.tsv');
  const reset = coffre(['incident', 'reset-codes', '--data', data, '--establishment', '0990000M', '--out', newFile]);
  assert.equal(reset.code, 0, reset.err);
  const fresh = new Map(readCodes(newFile).map((c) => [c.login, c.code]));
  assert.equal(fresh.size, 999);                 // every provisioned one, not the activated
  srv = await startServer(t, data, [...FAST_HASH, ...MFA_DEFAULT]);
  const old = codes[901];
  const stale = await request(srv.port, 'POST', '/api/v1/activate',
    { body: { login: old.login, code: old.code, password: STRONG }, from: '127.0.9.2' });
  assert.equal(stale.status, 401, 'an old code no longer works');
  await new Promise((res) => setTimeout(res, 1100));
  const renewed = await request(srv.port, 'POST', '/api/v1/activate',
    { body: { login: old.login, code: fresh.get(old.login), password: STRONG }, from: '127.0.9.2' });
  assert.equal(renewed.status, 200, renewed.body);

  // 2: freeze every account not yet activated (admin API): even a valid
  // new code then opens nothing.
  const adm = await request(srv.port, 'POST', '/api/v1/activate',
    { body: { login: admin.login, code: admin.code, password: STRONG }, from: '127.0.9.3' });
  assert.equal(adm.status, 200, adm.body);
  assert.equal(adm.json.mfa, 'enroll');           // an administrator enrolls a factor first
  await enrollTotp(srv.port, cookieOf(adm), '127.0.9.3');
  const froze = await request(srv.port, 'POST', '/api/v1/incidents/freeze-unactivated',
    { body: {}, cookie: cookieOf(adm), from: '127.0.9.3' });
  assert.equal(froze.status, 200);
  assert.equal(froze.json.count, 998);
  const another = codes[902];
  const blocked = await request(srv.port, 'POST', '/api/v1/activate',
    { body: { login: another.login, code: fresh.get(another.login), password: STRONG }, from: '127.0.9.4' });
  assert.equal(blocked.status, 401);
  closeAgents();
  assert.equal(await srv.stop(), 0);
  assert.equal(coffre(['audit', 'verify', '--data', data]).code, 0);
});

test('credential stuffing, default second-factor policy: 10,000 pairs (100 right: 80 students, 20 staff, teachers and admins with TOTP)', async (t) => {
  const root = tempDir(t);
  const data = join(root, 'data');
  const db = join(data, 'coffre.db');
  assert.equal(coffre(['init', '--data', data, '--academie', '10']).code, 0);
  assert.equal(coffre(['demo-data', '--data', data, '--establishments', '1', '--students-per', '150',
    '--guardians-per', '0']).code, 0);
  const codesFile = join(root, 'codes.tsv');
  assert.equal(coffre(['account', 'provision', '--data', data, '--role', 'student', '--establishment', '0990000M',
    '--all', '1', '--out', codesFile]).code, 0);
  const students = readCodes(codesFile).map((a) => ({ ...a, role: 'student' }));
  assert.equal(students.length, 150);
  // every staff member of the school (teachers: those who teach a class),
  // and six académie administrators
  const teaches = new Set(sqlite(db, 'SELECT DISTINCT lower(hex(p0)) FROM teachings').split('\n'));
  const staffIds = sqlite(db, 'SELECT lower(hex(id)) FROM staff ORDER BY rid').split('\n');
  assert.equal(staffIds.length, 14);
  const staff = staffIds.map((person) => {
    const role = teaches.has(person) ? 'teacher' : 'staff';
    const p = coffre(['account', 'provision', '--data', data, '--role', role, '--person', person]);
    assert.equal(p.code, 0, p.err);
    return { role, person, login: p.out.match(/^login (\S+)/m)[1], code: p.out.match(/activation code (\S+)/)[1] };
  });
  for (let i = 0; i < 6; i++) staff.push({ ...provisionAdmin(data, `admin.stuffing${i}`), role: 'academie_admin' });
  const roles = new Set(staff.map((a) => a.role));
  assert.ok(roles.has('teacher') && roles.has('staff'), [...roles].join());
  const accts = [...students.slice(0, 145), ...staff];   // students[145..149]: never leaked
  const srv = await startServer(t, data, [...FAST_HASH, ...MFA_DEFAULT]);
  const pw = (a) => `${STRONG} ${a.login}`;
  const classOf = new Map(sqlite(db, 'SELECT lower(hex(p0)), lower(hex(p1)) FROM teachings').split('\n')
    .map((l) => l.split('|')));
  const personOf = new Map(sqlite(db, 'SELECT lower(hex(id)), lower(hex(person_id)) FROM accounts WHERE person_id IS NOT NULL')
    .split('\n').map((l) => l.split('|')));
  // Activation; every staff, teacher and admin account enrolls TOTP (codes
  // by oathtool), as the activation flow makes them do; students do not.
  for (const [i, a] of [...accts, ...students.slice(145)].entries()) {
    const from = `127.0.10.${(i % 200) + 1}`;
    const r = await request(srv.port, 'POST', '/api/v1/activate',
      { body: { login: a.login, code: a.code, password: pw(a) }, from });
    assert.equal(r.status, 200, r.body);
    a.id = r.json.account.id.toLowerCase();
    a.person ??= personOf.get(a.id);
    if (a.role === 'student') {
      assert.equal(r.json.mfa, 'none');
      assert.ok(a.person);
    } else {
      assert.equal(r.json.mfa, 'enroll');
      a.totp = await enrollTotp(srv.port, cookieOf(r), from);
    }
  }
  // What a signed-in attacker tries first: what the account's holder can
  // reach (academie admins: the admin endpoints, not records; a dry run).
  const probesOf = (a) => [
    a.role === 'student' ? ['GET', `/api/v1/students/${a.person}`]
      : a.role === 'teacher' ? ['GET', `/api/v1/classes/${classOf.get(a.person)}/students`]
        : a.role === 'staff' ? ['GET', `/api/v1/students/${students[0].person}`]    // a pupil of the school
          : ['POST', '/api/v1/incidents/freeze-unactivated', { dry_run: true }]];
  const probe = async (a, cookie, from) => {
    const out = [];
    for (const [method, path, body] of probesOf(a))
      out.push(await request(srv.port, method, path, { body, cookie, from }));
    return out;
  };

  // The leaked list: 100 right pairs among 10,000, in random order.
  const leaked = [...students.slice(0, 80), ...staff];
  assert.equal(leaked.length, 100);
  const pairs = leaked.map((a) => ({ acct: a, login: a.login, password: pw(a), right: true }));
  while (pairs.length < 10000) {
    const known = randomInt(3) > 0;
    pairs.push({ login: known ? accts[randomInt(accts.length)].login : `fuite.${randomBytes(4).toString('hex')}`,
                 password: randomBytes(6).toString('base64'), right: false });
  }
  for (let i = pairs.length - 1; i > 0; i--) {
    const j = randomInt(i + 1);
    [pairs[i], pairs[j]] = [pairs[j], pairs[i]];
  }
  const RUN_MS = 15000, ADDRESSES = 100;
  const deadline = Date.now() + RUN_MS;
  const stats = { 200: 0, 401: 0, 429: 0, other: 0 };
  const through = new Map(), guesses = new Map();   // login -> { acct, answers }
  const signedIn = async (pair, r, from) => {
    assert.equal(pair.right, true);
    through.set(pair.login, { acct: pair.acct, login: r.json, answers: await probe(pair.acct, cookieOf(r), from) });
  };
  // A patient attacker: a pair refused by the backoff goes back in the
  // queue, and the address waits as told (up to 1 s) before going on.
  const queue = pairs.slice();
  let tried = 0;
  await swarm(ADDRESSES, deadline, () => (queue.length ? queue.shift() : null), async (pair, w) => {
    const from = `127.0.11.${w + 1}`;
    const r = await request(srv.port, 'POST', '/api/v1/login', { body: { login: pair.login, password: pair.password }, from });
    stats[r.status in stats ? r.status : 'other']++;
    if (r.status === 429) {
      queue.push(pair);
      await new Promise((res) => setTimeout(res, Math.min(1000 * Number(r.headers['retry-after'] || 1), 1000)));
      return;
    }
    tried++;
    guesses.set(pair.login, (guesses.get(pair.login) || 0) + 1);
    if (r.status === 200) await signedIn(pair, r, from);
  });
  const inRun = through.size;
  const inRunStaff = [...through.values()].filter((x) => x.acct.role !== 'student').length;
  const perAccount = Math.max(0, ...guesses.values());
  const checked = stats[200] + stats[401];
  const bound = ADDRESSES * (20 + Math.ceil(Math.log2(RUN_MS / 1000)) + 2);
  assert.equal(stats.other, 0);
  assert.ok(checked <= bound, `${checked} password checks exceed the backoff bound ${bound}`);
  assert.ok(inRun < 100, 'the backoff kept most of the list from being tried');
  assert.ok(stats[429] > 0);

  // The backoff only delays: later, from fresh addresses and waiting as
  // told, the attacker gets every right password of the list through.
  const LATER_MS = 40000;
  const later = Date.now() + LATER_MS;
  await Promise.all(leaked.filter((a) => !through.has(a.login)).map(async (a, k) => {
    const from = `127.0.13.${k + 1}`;
    const r = await loginPatiently(srv.port, a.login, pw(a), from, later);
    if (r.status === 200) await signedIn({ acct: a, login: a.login, right: true }, r, from);
    else assert.equal(r.status, 429, r.body);
  }));

  // Count, for every password that got through, whether it reached a
  // record or the admin endpoint.
  const P = 'https://coffre.invalid/problems/';
  const fig = { student: { through: 0, reached: 0 }, staff: { through: 0, reached: 0 } };
  const types = new Map();
  for (const { acct, login, answers } of through.values()) {
    const f = acct.role === 'student' ? fig.student : fig.staff;
    f.through++;
    if (answers.some((r) => r.status >= 200 && r.status < 300)) f.reached++;
    if (acct.role === 'student') {
      assert.equal(login.mfa, 'none');
      assert.equal(answers[0].status, 200, `a student's own record, password alone: ${answers[0].body}`);
    } else {
      assert.equal(login.mfa, 'required');
      assert.deepEqual(login.factors, ['totp', 'recovery']);
      for (const r of answers) {
        assert.equal(r.status, 403, r.body);
        assert.equal(r.json.type, `${P}mfa-challenge-required`, r.body);
        assert.doesNotMatch(r.body, /"(family|given)_?names?"|"ine"/);
        types.set(r.json.type, (types.get(r.json.type) || 0) + 1);
      }
    }
  }

  // The legitimate holder of each staff, teacher and admin account that the
  // attacker signed in to: the same password and the right TOTP code reach
  // the same endpoints.
  let legitOk = 0;
  await Promise.all([...through.values()].filter((x) => x.acct.role !== 'student').map(async ({ acct }, k) => {
    const from = `127.0.14.${k + 1}`;
    const r = await loginPatiently(srv.port, acct.login, pw(acct), from, Date.now() + LATER_MS);
    assert.equal(r.status, 200, r.body);
    const cookie = cookieOf(r);
    const v = await verifyTotp(srv.port, cookie, from, acct.totp);
    assert.equal(v.status, 200, v.body);
    const answers = await probe(acct, cookie, from);
    for (const a of answers) assert.equal(a.status, 200, `${acct.role} with TOTP: ${a.body}`);
    legitOk++;
  }));

  console.log(`# credential stuffing (default second-factor policy): ${tried} of 10000 pairs tried in ` +
              `${RUN_MS / 1000} s from ${ADDRESSES} addresses; ${checked} reached a password check (bound ${bound}), ` +
              `${stats[429]} answers were 429; ${inRun} of the 100 right pairs got through in the run (${inRunStaff} of staff), ` +
              `${through.size} of 100 once the attacker waited out the backoff; at most ${perAccount} guesses reached one account`);
  console.log(`# credential stuffing: students (no factor): ${fig.student.reached} of ${fig.student.through} ` +
              `passwords through reached their records with the password alone; staff, teachers, admins (TOTP): ` +
              `${fig.staff.reached} of ${fig.staff.through} reached anything (${[...types].map(([k, n]) => `${n} x ${k.slice(P.length)}`).join(', ')}); ` +
              `with the right TOTP code ${legitOk} of ${fig.staff.through} holders reached them`);
  assert.equal(through.size, 100, 'every right password got through in the end');
  assert.equal(fig.staff.through, 20);
  assert.equal(fig.staff.reached, 0, 'a staff, teacher or admin password alone reached nothing');
  assert.equal(fig.student.reached, fig.student.through, 'a student without a factor is exposed by the password');
  assert.equal(legitOk, 20);

  // After the attack a legitimate student (never in the list) signs in.
  const legit = await request(srv.port, 'POST', '/api/v1/login',
    { body: { login: students[145].login, password: pw(students[145]) }, from: '127.0.12.1' });
  assert.equal(legit.status, 200, legit.body);
  closeAgents();
  assert.equal(await srv.stop(), 0);
});
