// mfa-webauthn.test.mjs - security keys over the API, answered by the
// software authenticator of tests/fixtures/webauthn/webauthn.mjs (node's
// crypto holds the private key, so it signs the server's own challenges:
// no test-only path in coffre).  An administrator on keys only registers
// one, signs in with it, and every forged answer is refused: a replay, a
// foreign origin, another challenge, a counter that does not grow, bad or
// oversized encodings; removal needs a fresh factor.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { coffre, tempDir } from './helpers.mjs';
import { startServer, request, cookieOf, provisionAdmin, closeAgents, FAST_HASH, STRONG,
         MFA_DEFAULT } from './server.mjs';
import { newCredential, register, assertion, b64u } from '../fixtures/webauthn/webauthn.mjs';

const P = 'https://coffre.invalid/problems/';
const ok = (r) => { assert.equal(r.code, 0, r.err); return r.out.trim(); };

test('WebAuthn: an admin on security keys only registers, signs in, and forged answers are refused', async (t) => {
  const data = join(tempDir(t), 'data');
  ok(coffre(['init', '--data', data, '--academie', '10']));
  const admin = provisionAdmin(data);
  const srv = await startServer(t, data, [...FAST_HASH, ...MFA_DEFAULT, '--mfa-admin-webauthn', '1']);
  const port = srv.port;
  const origin = `http://localhost:${port}`;
  const rpId = 'localhost';
  const from = '127.0.50.1';
  const post = (path, body, cookie) => request(port, 'POST', path, { body, cookie, from });

  const act = await post('/api/v1/activate', { login: admin.login, code: admin.code, password: STRONG });
  assert.equal(act.status, 200, act.body);
  assert.equal(act.json.mfa, 'enroll');
  const c1 = cookieOf(act);
  // keys only: TOTP is not offered to this role
  let r = await post('/api/v1/mfa/totp/enroll', {}, c1);
  assert.equal(r.status, 403);
  assert.equal(r.json.type, `${P}factor-not-allowed`);
  r = await post('/api/v1/incidents/revoke-sessions', { dry_run: true }, c1);
  assert.equal(r.json.type, `${P}mfa-required`);

  // registration
  const key = newCredential('es256');
  const opts = await post('/api/v1/mfa/webauthn/register/begin', {}, c1);
  assert.equal(opts.status, 200, opts.body);
  assert.equal(opts.json.rp.id, rpId);
  assert.equal(Buffer.from(opts.json.challenge, 'base64url').length, 32);
  assert.deepEqual(opts.json.pubKeyCredParams.map((p) => p.alg), [-7, -8]);
  const reg = register(key, { rpId, origin, challenge: Buffer.from(opts.json.challenge, 'base64url') });
  // bad encodings first: refused before any parsing, the challenge left alone
  r = await post('/api/v1/mfa/webauthn/register/finish', { name: 'Clé', ...reg, attestationObject: 'not base64url!' }, c1);
  assert.equal(r.status, 400);
  assert.equal(r.json.type, `${P}invalid-request`);
  r = await post('/api/v1/mfa/webauthn/register/finish',
    { name: 'Clé', ...reg, attestationObject: b64u(randomBytes(9000)) }, c1);
  assert.equal(r.status, 400);
  r = await post('/api/v1/mfa/webauthn/register/finish', { name: 'Clé', ...reg }, c1);
  assert.equal(r.status, 200, r.body);
  assert.equal(r.json.mfa_level, 2);
  assert.equal(r.json.recovery_codes.length, 10);
  const keyId = r.json.key.id;
  // the registration challenge was single use
  r = await post('/api/v1/mfa/webauthn/register/finish', { name: 'Clé 2', ...reg }, c1);
  assert.equal(r.status, 400);
  assert.equal(r.json.type, `${P}webauthn-invalid`);
  r = await post('/api/v1/incidents/revoke-sessions', { dry_run: true }, c1);
  assert.equal(r.status, 200, r.body);

  // a new sign-in: the key is asked for; a recovery code is not enough (keys only)
  const li = await post('/api/v1/login', { login: admin.login, password: STRONG });
  assert.equal(li.json.mfa, 'required');
  assert.deepEqual(li.json.factors, ['webauthn']);
  const c2 = cookieOf(li);
  r = await post('/api/v1/incidents/revoke-sessions', { dry_run: true }, c2);
  assert.equal(r.json.type, `${P}mfa-challenge-required`);

  const begin = async () => {
    const b = await post('/api/v1/mfa/webauthn/assert/begin', {}, c2);
    assert.equal(b.status, 200, b.body);
    assert.equal(b.json.allowCredentials[0].id, reg.id);
    return Buffer.from(b.json.challenge, 'base64url');
  };
  const finish = (a) => post('/api/v1/mfa/webauthn/assert/finish', a, c2);
  const refused = async (a, why) => {
    const x = await finish(a);
    assert.equal(x.status, 400, `${why}: ${x.body}`);
    assert.equal(x.json.type, `${P}webauthn-invalid`, why);
    return x;
  };

  // another origin, then the right answer to that (now spent) challenge
  let ch = await begin();
  let x = await refused(assertion(key, { rpId, origin: 'https://evil.invalid', challenge: ch, counter: 1 }), 'origin');
  assert.match(x.json.detail, /origin/);
  await refused(assertion(key, { rpId, origin, challenge: ch, counter: 1 }), 'a spent challenge');
  // an answer to another challenge
  ch = await begin();
  x = await refused(assertion(key, { rpId, origin, challenge: randomBytes(32), counter: 1 }), 'another challenge');
  assert.match(x.json.detail, /challenge/);
  // another RP id, user presence clear, a flipped signature
  ch = await begin();
  await refused(assertion(key, { rpId, origin, challenge: ch, counter: 1, authRpId: 'evil.invalid' }), 'rp id');
  ch = await begin();
  await refused(assertion(key, { rpId, origin, challenge: ch, counter: 1, flags: 0x04 }), 'user presence');
  ch = await begin();
  const a1 = assertion(key, { rpId, origin, challenge: ch, counter: 1 });
  const sig = Buffer.from(a1.signature, 'base64url'); sig[sig.length - 1] ^= 1;
  await refused({ ...a1, signature: b64u(sig) }, 'signature');
  // still not signed in
  r = await post('/api/v1/incidents/revoke-sessions', { dry_run: true }, c2);
  assert.equal(r.json.type, `${P}mfa-challenge-required`);
  // the right answer
  ch = await begin();
  r = await finish(assertion(key, { rpId, origin, challenge: ch, counter: 5 }));
  assert.equal(r.status, 200, r.body);
  assert.equal(r.json.mfa_level, 2);
  assert.equal(r.json.user_verified, true);
  r = await post('/api/v1/incidents/revoke-sessions', { dry_run: true }, c2);
  assert.equal(r.status, 200, r.body);
  // a cloned key: the counter does not grow
  ch = await begin();
  x = await refused(assertion(key, { rpId, origin, challenge: ch, counter: 5 }), 'counter');
  assert.match(x.json.detail, /counter/);
  // malformed JSON members
  r = await finish({ id: reg.id, clientDataJSON: '***', authenticatorData: 'AA', signature: 'AA' });
  assert.equal(r.status, 400);
  r = await finish({ id: reg.id, clientDataJSON: b64u(randomBytes(3000)), authenticatorData: 'AA', signature: 'AA' });
  assert.equal(r.status, 400);
  r = await finish({ id: reg.id, clientDataJSON: 'AA', authenticatorData: 'AA', signature: 'AA', extra: 1 });
  assert.equal(r.status, 400);

  // the factors list, then removal (a fresh factor: this session just passed one)
  const fl = await request(port, 'GET', '/api/v1/mfa', { cookie: c2, from });
  assert.equal(fl.json.keys.length, 1);
  assert.equal(fl.json.keys[0].name, 'Clé');
  assert.ok(fl.json.keys[0].last_used > 0);
  r = await request(port, 'DELETE', `/api/v1/mfa/webauthn/${'0'.repeat(32)}`, { cookie: c2, from });
  assert.equal(r.status, 404, r.body);
  r = await request(port, 'DELETE', `/api/v1/mfa/webauthn/${keyId}`, { cookie: c1, from });
  assert.equal(r.status, 200, r.body);               // c1 registered it a moment ago: fresh
  r = await post('/api/v1/incidents/revoke-sessions', { dry_run: true }, c2);
  assert.equal(r.json.type, `${P}mfa-required`);     // keys only, none left: enroll again
  assert.equal(await srv.stop(), 0);

  const rows = spawnSync('sqlite3', [join(data, 'audit.db'),
    "SELECT action || ' ' || outcome FROM entries WHERE action LIKE 'mfa.webauthn%'"], { encoding: 'utf8' }).stdout.split('\n');
  for (const want of ['mfa.webauthn.register ok', 'mfa.webauthn.register denied', 'mfa.webauthn.register failed',
                      'mfa.webauthn.assert ok', 'mfa.webauthn.assert denied', 'mfa.webauthn.remove ok'])
    assert.ok(rows.includes(want), `${want} in ${rows.join(', ')}`);
  closeAgents();
});
