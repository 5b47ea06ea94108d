// mfa.test.mjs - second factors over the API (no browser): a teacher is made
// to enroll TOTP before any record, codes computed by oathtool (an
// independent implementation), replays refused, recovery codes single use,
// a student without factors unaffected; and the phished-password attack:
// with only a staff password, every route of the table (`coffre routes`)
// that needs more than a session refuses, and the same request passes
// authentication once the second factor is passed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { coffre, tempDir } from './helpers.mjs';
import { startServer, request, cookieOf, provisionAdmin, closeAgents, FAST_HASH, STRONG,
         MFA_DEFAULT } from './server.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const ok = (r) => { assert.equal(r.code, 0, r.err); return r.out.trim(); };
const P = 'https://coffre.invalid/problems/';
const ine = (i) => {
  const n = 999000000 + i;
  return String(n).padStart(10, '0') + 'ABCDEFGHJKLMNPRSTUVWXYZ'[n % 23];
};

function sqlite(db, sql) {
  const r = spawnSync('sqlite3', [db, sql], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}

// The TOTP of time step `step` (30 s), by oathtool.
function totp(secret, step) {
  const r = spawnSync('oathtool', ['--totp', '-b', secret.replace(/ /g, ''), '-N', `@${step * 30}`],
    { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}
const stepNow = () => Math.floor(Date.now() / 1000 / 30);

function school(t) {
  const data = join(tempDir(t), 'data');
  ok(coffre(['init', '--data', data, '--academie', '10']));
  const E1 = ok(coffre(['establishment', 'add', '--data', data, '--uai', '0999001W', '--name', 'Collège Un', '--academie', '10']));
  const cls = ok(coffre(['class', 'add', '--data', data, '--establishment', '0999001W', '--name', '6A']));
  const st = [];
  for (let i = 1; i <= 3; i++)
    st[i] = ok(coffre(['student', 'add', '--data', data, '--establishment', '0999001W', '--class', '6A',
      '--ine', ine(i), '--family-name', `ELEVE${i}`, '--given-names', 'Camille', '--birth-date', '2013-02-01',
      '--email', `eleve${i}@e.invalid`]));
  const prof = ok(coffre(['staff', 'add', '--data', data, '--establishment', '0999001W', '--family-name', 'PROF',
    '--given-names', 'Dominique', '--email', 'prof@ac.invalid', '--function', 'professeur']));
  ok(coffre(['class', 'assign', '--data', data, '--establishment', '0999001W', '--class', '6A', '--staff-email', 'prof@ac.invalid']));
  const guardian = ok(coffre(['guardian', 'add', '--data', data, '--student', st[1], '--relationship', 'mère',
    '--family-name', 'ELEVE1', '--given-names', 'Karine', '--phone', '0601020304']));
  const accounts = {};
  for (const [who, role, person] of [['student', 'student', st[1]], ['teacher', 'teacher', prof]]) {
    const out = ok(coffre(['account', 'provision', '--data', data, '--role', role, '--person', person]));
    accounts[who] = { login: out.match(/^login (\S+)/m)[1], code: out.match(/activation code (\S+)/)[1] };
  }
  accounts.admin = provisionAdmin(data);
  return { data, E1, cls, st, prof, guardian, accounts };
}

const post = (port, path, body, cookie, from) => request(port, 'POST', path, { body, cookie, from });
const get = (port, path, cookie, from) => request(port, 'GET', path, { cookie, from });

async function activate(port, a, from) {
  const r = await post(port, '/api/v1/activate', { login: a.login, code: a.code, password: STRONG }, undefined, from);
  assert.equal(r.status, 200, r.body);
  return r;
}

async function login(port, a, from) {
  const r = await post(port, '/api/v1/login', { login: a.login, password: STRONG }, undefined, from);
  assert.equal(r.status, 200, r.body);
  return r;
}

// Enrolls and confirms TOTP in the session of `cookie`; returns the secret,
// the step spent and the recovery codes.
async function enrollTotp(port, cookie, from) {
  const e = await post(port, '/api/v1/mfa/totp/enroll', {}, cookie, from);
  assert.equal(e.status, 200, e.body);
  const step = stepNow();
  const c = await post(port, '/api/v1/mfa/totp/confirm', { code: totp(e.json.secret, step) }, cookie, from);
  assert.equal(c.status, 200, c.body);
  return { secret: e.json.secret, step, recovery: c.json.recovery_codes };
}

test('a teacher must enroll TOTP first; codes by oathtool; replays refused; recovery codes once only', async (t) => {
  const s = school(t);
  const srv = await startServer(t, s.data, [...FAST_HASH, ...MFA_DEFAULT]);
  const port = srv.port;
  const from = '127.0.40.1';

  // activation: signed in, but told to enroll; records refuse until then
  const act = await activate(port, s.accounts.teacher, from);
  assert.equal(act.json.mfa, 'enroll');
  assert.deepEqual(act.json.factors, []);
  const ca = cookieOf(act);
  let r = await get(port, `/api/v1/students/${s.st[1]}`, ca, from);
  assert.equal(r.status, 403);
  assert.equal(r.json.type, `${P}mfa-required`);
  assert.doesNotMatch(r.body, /ELEVE1|Camille/);
  r = await get(port, `/api/v1/classes/${s.cls}/students`, ca, from);
  assert.equal(r.json.type, `${P}mfa-required`);
  // whoami, its sessions and the factors list stay reachable
  assert.equal((await get(port, '/api/v1/session', ca, from)).status, 200);
  assert.equal((await get(port, '/api/v1/sessions', ca, from)).status, 200);
  const st0 = await get(port, '/api/v1/mfa', ca, from);
  assert.equal(st0.status, 200);
  assert.equal(st0.json.required, true);
  assert.equal(st0.json.totp, false);

  // enrollment: a 160-bit secret as grouped base32, its URI and a QR code
  const e = await post(port, '/api/v1/mfa/totp/enroll', {}, ca, from);
  assert.equal(e.status, 200, e.body);
  assert.match(e.json.secret, /^([A-Z2-7]{4} ){7}[A-Z2-7]{4}$/);
  assert.match(e.json.otpauth_uri, /^otpauth:\/\/totp\/coffre:[a-z.]+\?secret=[A-Z2-7]{32}&issuer=coffre/);
  assert.match(e.json.qr_svg, /^<svg [^>]*viewBox="0 0 \d+ \d+"[^>]*>.*<path fill="#000" d="M/);
  const secret = e.json.secret;

  // bad codes: letters, spaces, too short: 400, nothing changed
  for (const code of ['12a456', '123 456', ' 123456', '12345', '1234567', 123456]) {
    r = await post(port, '/api/v1/mfa/totp/confirm', { code }, ca, from);
    assert.equal(r.status, 400, `${code}: ${r.body}`);
  }
  // another session of the same account cannot confirm this enrollment
  const other = await login(port, s.accounts.teacher, '127.0.40.2');
  assert.equal(other.json.mfa, 'enroll');
  const cb = cookieOf(other);
  const step = stepNow();
  r = await post(port, '/api/v1/mfa/totp/confirm', { code: totp(secret, step) }, cb, '127.0.40.2');
  assert.equal(r.status, 409, r.body);
  assert.equal(r.json.type, `${P}no-pending-enrollment`);
  // a wrong code
  const wrong = String((Number(totp(secret, step)) + 1) % 1000000).padStart(6, '0');
  r = await post(port, '/api/v1/mfa/totp/confirm', { code: wrong }, ca, from);
  assert.equal(r.status, 401, r.body);
  assert.equal(r.json.type, `${P}mfa-failed`);
  // throttled like passwords: at once again is refused with Retry-After
  r = await post(port, '/api/v1/mfa/totp/confirm', { code: totp(secret, step) }, ca, from);
  assert.equal(r.status, 429, r.body);
  assert.ok(Number(r.headers['retry-after']) >= 1);
  await sleep(1100);
  // the right code confirms: 10 recovery codes, shown once; the session is raised
  r = await post(port, '/api/v1/mfa/totp/confirm', { code: totp(secret, step) }, ca, from);
  assert.equal(r.status, 200, r.body);
  assert.equal(r.json.mfa_level, 1);
  const recovery = r.json.recovery_codes;
  assert.equal(recovery.length, 10);
  for (const c of recovery) assert.match(c, /^[2-9A-HJ-NP-Z]{4}-[2-9A-HJ-NP-Z]{4}-[2-9A-HJ-NP-Z]{4}$/);
  assert.equal(new Set(recovery).size, 10);
  r = await get(port, `/api/v1/students/${s.st[1]}`, ca, from);
  assert.equal(r.status, 200, r.body);
  // the other session has not passed the factor: it must now
  r = await get(port, `/api/v1/students/${s.st[1]}`, cb, '127.0.40.2');
  assert.equal(r.json.type, `${P}mfa-challenge-required`);

  // sign out, sign in: a challenge; the confirming code is spent (replay)
  assert.equal((await post(port, '/api/v1/logout', undefined, ca, from)).status, 200);
  const li = await login(port, s.accounts.teacher, from);
  assert.equal(li.json.mfa, 'required');
  assert.deepEqual(li.json.factors, ['totp', 'recovery']);
  const c2 = cookieOf(li);
  r = await get(port, `/api/v1/students/${s.st[1]}`, c2, from);
  assert.equal(r.status, 403);
  assert.equal(r.json.type, `${P}mfa-challenge-required`);
  r = await post(port, '/api/v1/mfa/totp/verify', { code: totp(secret, step) }, c2, from);
  assert.equal(r.status, 401, `a replayed step: ${r.body}`);
  await sleep(2100);
  // a fresh code (the next step: within the +-1 window)
  const fresh = totp(secret, step + 1);
  r = await post(port, '/api/v1/mfa/totp/verify', { code: fresh }, c2, from);
  assert.equal(r.status, 200, r.body);
  assert.equal(r.json.mfa_level, 1);
  r = await get(port, `/api/v1/students/${s.st[1]}`, c2, from);
  assert.equal(r.status, 200, r.body);
  // the same code again, from another session, within its window: refused
  const c3 = cookieOf(await login(port, s.accounts.teacher, '127.0.40.3'));
  r = await post(port, '/api/v1/mfa/totp/verify', { code: fresh }, c3, '127.0.40.3');
  assert.equal(r.status, 401, `replay within the window: ${r.body}`);
  r = await get(port, `/api/v1/students/${s.st[1]}`, c3, '127.0.40.3');
  assert.equal(r.json.type, `${P}mfa-challenge-required`);

  // a recovery code works once, and only once; the account sees it was used
  await sleep(4100);
  r = await post(port, '/api/v1/mfa/recovery/verify', { code: 'ABCD EFGH JKLM' }, c3, '127.0.40.3');
  assert.equal(r.status, 400, 'spaces are not part of a code');
  r = await post(port, '/api/v1/mfa/recovery/verify', { code: recovery[0].toLowerCase() }, c3, '127.0.40.3');
  assert.equal(r.status, 200, r.body);
  assert.equal(r.json.recovery_left, 9);
  r = await get(port, `/api/v1/students/${s.st[1]}`, c3, '127.0.40.3');
  assert.equal(r.status, 200, r.body);
  const c4 = cookieOf(await login(port, s.accounts.teacher, '127.0.40.4'));
  r = await post(port, '/api/v1/mfa/recovery/verify', { code: recovery[0] }, c4, '127.0.40.4');
  assert.equal(r.status, 401, `a spent recovery code: ${r.body}`);
  r = await get(port, `/api/v1/students/${s.st[1]}`, c4, '127.0.40.4');
  assert.equal(r.json.type, `${P}mfa-challenge-required`);
  const ses = await get(port, '/api/v1/sessions', c4, '127.0.40.4');
  assert.equal(ses.json.recovery_used.length, 1);
  assert.ok(Math.abs(ses.json.recovery_used[0].time - Date.now() / 1000) < 60);
  const fl = await get(port, '/api/v1/mfa', c4, '127.0.40.4');
  assert.equal(fl.json.recovery_left, 9);
  assert.equal(fl.json.recovery_used.length, 1);
  assert.equal(await srv.stop(), 0);

  // audited: the enrollment, the refusals and the recovery code; never a code or a secret
  const audit = join(s.data, 'audit.db');
  const rows = sqlite(audit, "SELECT action || ' ' || outcome FROM entries WHERE action LIKE 'mfa.%'").split('\n');
  for (const want of ['mfa.totp.enroll ok', 'mfa.totp.confirm failed', 'mfa.totp.confirm denied', 'mfa.totp.confirm ok',
                      'mfa.totp.confirm throttled', 'mfa.totp.verify denied', 'mfa.totp.verify ok',
                      'mfa.recovery.use ok', 'mfa.recovery.use denied'])
    assert.ok(rows.includes(want), `${want} in ${rows.join(', ')}`);
  assert.equal(sqlite(audit, "SELECT count(*) FROM entries WHERE action = 'student.read' AND outcome = 'denied'"), '5');
  const dump = sqlite(audit, 'SELECT * FROM entries');
  assert.doesNotMatch(dump, new RegExp(secret.replace(/ /g, '').slice(0, 16)));
  assert.doesNotMatch(dump, new RegExp(recovery[1]));
  // the store keeps neither the secret nor the codes in clear
  const db = sqlite(join(s.data, 'coffre.db'), "SELECT hex(fields) FROM mfa_factors");
  assert.doesNotMatch(db, new RegExp(Buffer.from(secret.replace(/ /g, '')).toString('hex').toUpperCase()));
  closeAgents();
});

test('a student without factors reads their own record; a student who enrolled must pass it', async (t) => {
  const s = school(t);
  const srv = await startServer(t, s.data, [...FAST_HASH, ...MFA_DEFAULT]);
  const port = srv.port;
  const act = await activate(srv.port, s.accounts.student, '127.0.41.1');
  assert.equal(act.json.mfa, 'none');
  const c = cookieOf(act);
  let r = await get(port, `/api/v1/students/${s.st[1]}`, c, '127.0.41.1');
  assert.equal(r.status, 200, r.body);
  assert.equal(r.json.family_name, 'ELEVE1');
  // optional, but once enrolled it is asked for
  await enrollTotp(port, c, '127.0.41.1');
  const c2 = cookieOf(await login(port, s.accounts.student, '127.0.41.1'));
  r = await get(port, `/api/v1/students/${s.st[1]}`, c2, '127.0.41.1');
  assert.equal(r.json.type, `${P}mfa-challenge-required`);
  closeAgents();
});

// Plausible paths for the '*' of each route: ids of real records, so the
// request reaches its handler once authenticated.
function pathOf(route, s) {
  const ids = {
    student: s.st[1], guardian: s.guardian, children: s.guardian, staff: s.prof,
    class: `${s.cls}/students`, establishment: `${s.E1}/classes`, incident: 'revoke-sessions',
    session_revoke: '0123456789abcdef', mfa_webauthn_remove: '00000000000000000000000000000000',
  };
  let p = route.pattern;
  if (p.endsWith('*')) {
    assert.ok(route.name in ids, `the test knows no id for route ${route.name} (${p}): add one`);
    p = p.slice(0, -1) + ids[route.name];
  }
  if (route.name === 'student_find') p += `?ine=${ine(1)}`;
  if (route.name === 'staff_find') p += '?email=prof@ac.invalid';
  return p;
}
const bodies = {
  incident: { dry_run: true }, password: { current: 'not the password', new: STRONG + ' encore' },
  provision: { role: 'teacher' }, unlock: { login: 'nobody', reason: 'verified-with-user' },
};

test('phished password: with a staff password and no second factor, every route past sign-in refuses', async (t) => {
  const s = school(t);
  const routes = ok(coffre(['routes'])).split('\n').map((l) => JSON.parse(l));
  assert.ok(routes.length >= 20);
  // The routes a password alone may reach, by name: sign-in, whoami,
  // sign-out, one's own sessions, and the second-factor ceremonies.
  const open = new Set(['login', 'activate', 'session', 'logout', 'sessions', 'session_revoke', 'mfa',
    // the pages (docs/pages.md): sign-in, activation, sign-out, language, static files
    'page_root', 'page_signin', 'form_signin', 'page_activate', 'form_activate', 'form_signout',
    'form_revoke', 'page_lang', 'static']);
  for (const r of routes) {
    if (['none', 'session', 'partial'].includes(r.auth))
      assert.ok(open.has(r.name) || (r.auth === 'partial' && r.name.startsWith('mfa_')),
        `route ${r.method} ${r.pattern} (${r.name}) needs only '${r.auth}': list it here or give it a need`);
  }
  const gated = routes.filter((r) => !['none', 'session', 'partial'].includes(r.auth));
  assert.ok(gated.length >= 12, 'records, administration and incidents are all gated');

  const srv = await startServer(t, s.data, [...FAST_HASH, ...MFA_DEFAULT]);
  const port = srv.port;
  // the legitimate owners enrolled TOTP at activation
  const owners = {};
  for (const who of ['teacher', 'admin']) {
    const from = who === 'teacher' ? '127.0.42.1' : '127.0.42.2';
    const a = await activate(port, s.accounts[who], from);
    owners[who] = { from, ...(await enrollTotp(port, cookieOf(a), from)) };
  }
  // the attacker: the passwords, from elsewhere, no second factor
  const thief = {};
  for (const who of ['teacher', 'admin']) {
    const r = await login(port, s.accounts[who], '127.0.43.1');
    assert.equal(r.json.mfa, 'required');
    thief[who] = cookieOf(r);
  }
  const whoFor = (r) => (r.auth.startsWith('admin') ? 'admin' : 'teacher');
  const send = (r, cookie, from) => request(port, r.method, pathOf(r, s),
    { cookie, from, body: r.flags.includes('json_body') ? (bodies[r.name] ?? {}) : undefined });
  for (const r of gated) {
    const res = await send(r, thief[whoFor(r)], '127.0.43.1');
    if (r.flags.includes('form_body')) {
      // a page's form without a form body or its token: refused before the handler
      assert.ok([403, 415].includes(res.status), `${r.method} ${r.pattern}: ${res.status} ${res.body}`);
      continue;
    }
    if (!r.pattern.startsWith('/api/')) {
      // a page sends the browser to the challenge instead
      assert.equal(res.status, 303, `${r.method} ${r.pattern}: ${res.body}`);
      assert.equal(res.headers.location, '/mfa/challenge', `${r.method} ${r.pattern}`);
      continue;
    }
    assert.equal(res.status, 403, `${r.method} ${r.pattern}: ${res.body}`);
    assert.equal(res.json.type, `${P}mfa-challenge-required`, `${r.method} ${r.pattern}`);
    assert.doesNotMatch(res.body, /ELEVE|Camille|Dominique|PROF|Karine/);
  }
  // nor add a factor of the thief's own to the account
  for (const path of ['/api/v1/mfa/totp/enroll', '/api/v1/mfa/webauthn/register/begin']) {
    const res = await post(port, path, {}, thief.teacher, '127.0.43.1');
    assert.equal(res.status, 403, `${path}: ${res.body}`);
    assert.equal(res.json.type, `${P}step-up-required`);
  }
  // the thief's sessions still cannot pass: no code
  const guess = await post(port, '/api/v1/mfa/totp/verify', { code: '000000' }, thief.teacher, '127.0.43.1');
  assert.ok([401, 429].includes(guess.status), guess.body);

  // the owners, after their second factor: every request passes authentication
  const legit = {};
  for (const who of ['teacher', 'admin']) {
    const o = owners[who];
    const c = cookieOf(await login(port, s.accounts[who], o.from));
    await sleep(1100);               // the thief's guess made the teacher's codes wait 1 s
    const v = await post(port, '/api/v1/mfa/totp/verify', { code: totp(o.secret, o.step + 1) }, c, o.from);
    assert.equal(v.status, 200, `${who}: ${v.body}`);
    legit[who] = c;
  }
  const refusals = new Set(['unauthenticated', 'mfa-required', 'mfa-challenge-required', 'step-up-required',
                            'password-reset-required']);
  let reached = 0;
  for (const r of gated) {
    const who = whoFor(r);
    const res = await send(r, legit[who], owners[who].from);
    const type = res.json?.type?.replace(P, '');
    assert.ok(!refusals.has(type) && res.status !== 401, `${r.method} ${r.pattern}: ${res.status} ${res.body}`);
    if (res.status === 200) reached++;
  }
  // the records and the incident dry run were served
  assert.ok(reached >= 8, `${reached} routes answered 200`);
  closeAgents();
});

test('step-up: an incident command needs a factor passed within --mfa-step-up-min; records do not', async (t) => {
  const s = school(t);
  const srv = await startServer(t, s.data, [...FAST_HASH, ...MFA_DEFAULT, '--mfa-step-up-min', '2']);
  const port = srv.port;
  const from = '127.0.44.1';
  const a = await activate(port, s.accounts.admin, from);
  const cookie = cookieOf(a);
  const { secret, step } = await enrollTotp(port, cookie, from);
  const incident = () => post(port, '/api/v1/incidents/revoke-sessions', { dry_run: true }, cookie, from);
  let r = await incident();
  assert.equal(r.status, 200, r.body);
  // three minutes later (the session's mfa_at moved back, as time would)
  const ref = (await get(port, '/api/v1/session', cookie, from)).json.session.ref;
  const db = join(s.data, 'coffre.db');
  sqlite(db, `UPDATE sessions SET mfa_at = mfa_at - 180 WHERE hex(token_hash) LIKE '${ref.toUpperCase()}%'`);
  r = await incident();
  assert.equal(r.status, 403, r.body);
  assert.equal(r.json.type, `${P}step-up-required`);
  // an ordinary admin request still passes: the factor was passed in this session
  r = await post(port, '/api/v1/accounts/unlock', { login: 'nobody', reason: 'verified-with-user' }, cookie, from);
  assert.equal(r.status, 404, r.body);
  // a fresh code, and the command goes through
  r = await post(port, '/api/v1/mfa/totp/verify', { code: totp(secret, step + 1) }, cookie, from);
  assert.equal(r.status, 200, r.body);
  r = await incident();
  assert.equal(r.status, 200, r.body);
  // adding a second factor is a sensitive action too: a stale session may not
  sqlite(db, `UPDATE sessions SET mfa_at = mfa_at - 180 WHERE hex(token_hash) LIKE '${ref.toUpperCase()}%'`);
  r = await post(port, '/api/v1/mfa/webauthn/register/begin', {}, cookie, from);
  assert.equal(r.json.type, `${P}step-up-required`);
  r = await post(port, '/api/v1/mfa/totp/enroll', {}, cookie, from);
  assert.equal(r.json.type, `${P}step-up-required`);
  assert.equal(await srv.stop(), 0);

  // the admin lost the phone: an operator resets the factors (audited), the
  // sessions end, and the next sign-in must enroll again
  const bad = coffre(['account', 'mfa-reset', '--data', s.data, '--login', s.accounts.admin.login, '--reason', 'Jean Dupont']);
  assert.equal(bad.code, 2, bad.err);
  const reset = coffre(['account', 'mfa-reset', '--data', s.data, '--login', s.accounts.admin.login, '--reason', 'verified-in-person']);
  assert.equal(reset.code, 0, reset.err);
  assert.equal(sqlite(join(s.data, 'audit.db'), "SELECT fields || ' ' || outcome FROM entries WHERE action = 'account.mfa_reset'"),
    'reason:verified-in-person ok');
  const srv2 = await startServer(t, s.data, [...FAST_HASH, ...MFA_DEFAULT]);
  r = await get(srv2.port, '/api/v1/session', cookie, from);
  assert.equal(r.status, 401);
  r = await login(srv2.port, s.accounts.admin, from);
  assert.equal(r.json.mfa, 'enroll');
  closeAgents();
});
