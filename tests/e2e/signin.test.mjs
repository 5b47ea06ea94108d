// signin.test.mjs - activation and sign-in against a real server: the
// happy paths, every refusal, the identical answers that keep logins from
// being enumerated, sessions, and the HTTP layer's bad-input answers.
// Every server runs the production second-factor policy (MFA_DEFAULT):
// the students here have no factor (optional for them), the administrator
// enrolls TOTP before its incident command.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { coffre, tempDir } from './helpers.mjs';
import { startServer, request, cookieOf, provisionStudent, provisionAdmin, closeAgents,
         FAST_HASH, STRONG, MFA_DEFAULT } from './server.mjs';
import { enrollTotp } from './totp.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function sqlite(db, sql) {
  const r = spawnSync('sqlite3', [db, sql], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}

function setup(t, students = 10) {
  const data = join(tempDir(t), 'data');
  assert.equal(coffre(['init', '--data', data, '--academie', '10']).code, 0);
  const d = coffre(['demo-data', '--data', data, '--establishments', '1', '--students-per', String(students),
    '--guardians-per', '0']);
  assert.equal(d.code, 0, d.err);
  return data;
}

const ine = (i) => {
  // INE-BEA of demo serial i: 0999000000 + i with its mod-23 letter
  const n = 999000000 + i;
  return String(n).padStart(10, '0') + 'ABCDEFGHJKLMNPRSTUVWXYZ'[n % 23];
};

test('activation: the happy path, then used, expired, foreign and frozen codes are refused', async (t) => {
  const data = setup(t);
  const a = provisionStudent(data, ine(1));
  const b = provisionStudent(data, ine(2));
  const c = provisionStudent(data, ine(3));
  const d = provisionStudent(data, ine(4));
  const admin = provisionAdmin(data);
  // d's code expired (as if 30 days had passed)
  sqlite(join(data, 'coffre.db'), `UPDATE accounts SET code_expires = 1 WHERE id = x'${d.account}'`);
  const srv = await startServer(t, data, [...FAST_HASH, ...MFA_DEFAULT]);
  const port = srv.port;
  const act = (who, code, from, password = STRONG) =>
    request(port, 'POST', '/api/v1/activate', { body: { login: who.login, code, password }, from });

  // another account's code on a's login: refused
  const foreign = await act(a, b.code, '127.0.0.11');
  assert.equal(foreign.status, 401);
  assert.equal(foreign.json.type, 'https://coffre.invalid/problems/activation-failed');
  await sleep(1100);                      // a's login waits 1 s after a failure
  // a weak password: told why, in plain words, without the password
  const weak = await act(a, a.code, '127.0.0.11', 'azerty123');
  assert.equal(weak.status, 422);
  assert.match(weak.json.detail, /too easy to guess/);
  assert.doesNotMatch(weak.body, /azerty123/);
  // the happy path: activated and signed in at once
  const ok = await act(a, a.code, '127.0.0.11');
  assert.equal(ok.status, 200, ok.body);
  assert.equal(ok.json.account.login, a.login);
  assert.equal(ok.json.account.state, 'active');
  assert.equal(ok.json.mfa, 'none');      // a student: a second factor is optional
  const cookie = cookieOf(ok);
  assert.match(ok.headers['set-cookie'][0], /HttpOnly; SameSite=Strict; Path=\//);
  assert.doesNotMatch(ok.headers['set-cookie'][0], /Secure/);          // plain loopback only
  const me = await request(port, 'GET', '/api/v1/session', { cookie, from: '127.0.0.11' });
  assert.equal(me.status, 200);
  assert.equal(me.json.account.id, a.account);
  // the used code: refused, with the same answer as any other refusal
  await sleep(100);
  const used = await act(a, a.code, '127.0.0.12');
  assert.equal(used.status, 401);
  assert.equal(used.json.detail, foreign.json.detail);
  // the expired code
  const expired = await act(d, d.code, '127.0.0.13');
  assert.equal(expired.status, 401);
  assert.equal(expired.json.detail, foreign.json.detail);
  // an unknown login: same answer again
  const unknown = await act({ login: 'nobody.nowhere' }, c.code, '127.0.0.14');
  assert.equal(unknown.status, 401);
  assert.equal(unknown.json.detail, foreign.json.detail);

  // the administrator freezes every account not yet activated: c's valid
  // code stops working
  const adm = await act(admin, admin.code, '127.0.0.15');
  assert.equal(adm.status, 200, adm.body);
  assert.equal(adm.json.mfa, 'enroll');
  await enrollTotp(port, cookieOf(adm), '127.0.0.15');
  const count = await request(port, 'POST', '/api/v1/incidents/freeze-unactivated',
    { body: { dry_run: true }, cookie: cookieOf(adm), from: '127.0.0.15' });
  assert.equal(count.status, 200, count.body);
  assert.equal(count.json.count, 3);      // b, c, d
  const froze = await request(port, 'POST', '/api/v1/incidents/freeze-unactivated',
    { body: {}, cookie: cookieOf(adm), from: '127.0.0.15' });
  assert.equal(froze.json.count, 3);
  const frozen = await act(c, c.code, '127.0.0.16');
  assert.equal(frozen.status, 401);
  assert.equal(frozen.json.detail, foreign.json.detail);
  // a student cannot run incident commands
  const denied = await request(port, 'POST', '/api/v1/incidents/freeze-unactivated',
    { body: {}, cookie, from: '127.0.0.11' });
  assert.equal(denied.status, 403);

  closeAgents();
  assert.equal(await srv.stop(), 0);
  const v = coffre(['audit', 'verify', '--data', data]);
  assert.equal(v.code, 0, v.out + v.err);
  // every attempt above left an entry, none with a code or password in it
  const dump = sqlite(join(data, 'audit.db'), 'SELECT action, outcome FROM entries');
  assert.match(dump, /account\.activate\|ok/);
  assert.match(dump, /account\.activate\|failed/);
  assert.match(dump, /incident\.freeze-unactivated\|ok/);
  const all = sqlite(join(data, 'audit.db'), 'SELECT * FROM entries');
  for (const secret of [a.code, c.code, STRONG, a.login])
    assert.ok(!all.includes(secret), 'the audit trail holds no secret and no login');
});

test('sign-in: unknown and known logins get byte-identical answers; sessions work', async (t) => {
  const data = setup(t, 30);
  const accounts = [];
  for (let i = 1; i <= 12; i++) accounts.push(provisionStudent(data, ine(i)));
  const srv = await startServer(t, data, [...FAST_HASH, ...MFA_DEFAULT]);
  const port = srv.port;
  for (const [i, a] of accounts.entries()) {
    const r = await request(port, 'POST', '/api/v1/activate',
      { body: { login: a.login, code: a.code, password: `${STRONG} ${i}` }, from: `127.0.4.${i + 1}` });
    assert.equal(r.status, 200, r.body);
  }
  const strip = (r) => ({ status: r.status, body: r.body.replace(/"request_id":"[0-9a-f]+"/, ''),
                          type: r.headers['content-type'] });
  // one wrong attempt per known account vs one per unknown login, each
  // from its own address: no throttling in the way
  const known = [], unknown = [];
  for (let i = 0; i < 10; i++) {
    known.push(await request(port, 'POST', '/api/v1/login',
      { body: { login: accounts[i].login, password: 'pas le bon mot' }, from: `127.0.5.${i + 1}` }));
    unknown.push(await request(port, 'POST', '/api/v1/login',
      { body: { login: `inconnu.${i}`, password: 'pas le bon mot' }, from: `127.0.6.${i + 1}` }));
  }
  for (let i = 0; i < 10; i++) {
    assert.deepEqual(strip(known[i]), strip(unknown[i]));
    assert.equal(known[i].status, 401);
  }
  // the right password signs in, by cookie and by bearer token
  const ok = await request(port, 'POST', '/api/v1/login',
    { body: { login: accounts[11].login.toUpperCase(), password: `${STRONG} 11`, want_token: true },
      from: '127.0.5.50' });
  assert.equal(ok.status, 200, ok.body);
  assert.match(ok.json.token, /^[A-Za-z0-9_-]{43}$/);
  const bearer = await request(port, 'GET', '/api/v1/session', { token: ok.json.token, from: '127.0.5.50' });
  assert.equal(bearer.status, 200);
  const list = await request(port, 'GET', '/api/v1/sessions', { token: ok.json.token, from: '127.0.5.50' });
  assert.equal(list.status, 200);
  assert.ok(list.json.sessions.length >= 2);  // the activation's and this one
  // revoke the activation's session by its ref, then sign out
  const other = list.json.sessions.find((s) => s.ref !== list.json.current);
  const rv = await request(port, 'DELETE', `/api/v1/sessions/${other.ref}`, { token: ok.json.token, from: '127.0.5.50' });
  assert.equal(rv.status, 200);
  const out = await request(port, 'POST', '/api/v1/logout', { token: ok.json.token, from: '127.0.5.50' });
  assert.equal(out.status, 200);
  const after = await request(port, 'GET', '/api/v1/session', { token: ok.json.token, from: '127.0.5.50' });
  assert.equal(after.status, 401);
  // a forged or malformed token is just unauthenticated
  for (const tok of ['x', 'A'.repeat(43), ok.json.token.slice(0, 42) + '!'])
    assert.equal((await request(port, 'GET', '/api/v1/session', { token: tok, from: '127.0.5.51' })).status, 401);
  closeAgents();
  assert.equal(await srv.stop(), 0);
});

test('bad input: problem documents, nothing changed, others still served', async (t) => {
  const data = setup(t);
  const srv = await startServer(t, data, [...FAST_HASH, ...MFA_DEFAULT]);
  const port = srv.port;
  const cases = [
    [{ body: '{"login": "a", "password": ', raw: true }, 400],                          // malformed JSON
    [{ body: 'login=a&password=b', raw: true, headers: { 'Content-Type': 'application/x-www-form-urlencoded' } }, 415],
    [{ body: { login: 'a', password: 'b', extra: 1 } }, 400],                              // unknown field
    [{ body: { login: 'a' } }, 400],                                                       // missing field
    [{ body: { login: 'a'.repeat(300), password: 'b' } }, 400],                            // over-long string
    [{ body: { login: 'a', password: 'p'.repeat(129) } }, 400],                            // over-long password
    [{ body: Buffer.from('{"login":"a\xff","password":"b"}', 'latin1'), raw: true }, 400],  // invalid UTF-8
    [{ body: JSON.stringify({ login: 'a', password: 'b', pad: 'x'.repeat(5000) }), raw: true }, 413],
    [{ body: '[]', raw: true }, 400],
  ];
  for (const [opts, want] of cases) {
    const r = await request(port, 'POST', '/api/v1/login', { ...opts, from: '127.0.7.1' });
    assert.equal(r.status, want, `${JSON.stringify(opts).slice(0, 80)} -> ${r.status} ${r.body}`);
    assert.equal(r.headers['content-type'], 'application/problem+json');
    assert.match(r.json.type, /^https:\/\/coffre\.invalid\/problems\//);
    assert.equal(r.headers['x-content-type-options'], 'nosniff');
  }
  assert.equal((await request(port, 'GET', '/api/v1/nothing-here', { from: '127.0.7.2' })).status, 404);
  assert.equal((await request(port, 'GET', '/api/v1/login', { from: '127.0.7.2' })).status, 405);
  assert.equal((await request(port, 'GET', '/healthz', { from: '127.0.7.3' })).status, 200);
  const metrics = await request(port, 'GET', '/metrics', { from: '127.0.7.3' });
  assert.match(metrics.body, /coffre_http_requests_total\{route="login",status="400"\} [1-9]/);
  assert.match(metrics.body, /coffre_audit_queue_depth \d+/);
  closeAgents();
  assert.equal(await srv.stop(), 0);
});
