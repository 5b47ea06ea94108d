// totp.mjs - TOTP for the suites that run the production second-factor
// policy (MFA_DEFAULT): codes from oathtool (an implementation independent
// of coffre's), enrollment and verification through the API.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { request } from './server.mjs';

// The TOTP of time step `step` (30 s), by oathtool.
export function totp(secret, step) {
  const r = spawnSync('oathtool', ['--totp', '-b', secret.replace(/ /g, ''), '-N', `@${step * 30}`],
    { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}

export const stepNow = () => Math.floor(Date.now() / 1000 / 30);

// Enrolls and confirms TOTP in the session of `cookie` (which it raises to
// level 1); returns { secret, step (the one spent), recovery }.
export async function enrollTotp(port, cookie, from) {
  const e = await request(port, 'POST', '/api/v1/mfa/totp/enroll', { body: {}, cookie, from });
  assert.equal(e.status, 200, e.body);
  const step = stepNow();
  const c = await request(port, 'POST', '/api/v1/mfa/totp/confirm',
    { body: { code: totp(e.json.secret, step) }, cookie, from });
  assert.equal(c.status, 200, c.body);
  return { secret: e.json.secret, step, recovery: c.json.recovery_codes };
}

// Passes the TOTP in the session of `cookie` with a step not yet spent
// (each step is accepted once per account; +1 is inside the window).
// `f` is what enrollTotp returned; its step is advanced.
export async function verifyTotp(port, cookie, from, f) {
  const step = Math.max(stepNow(), f.step + 1);
  const r = await request(port, 'POST', '/api/v1/mfa/totp/verify',
    { body: { code: totp(f.secret, step) }, cookie, from });
  f.step = step;
  return r;
}
