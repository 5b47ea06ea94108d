// export.test.mjs - a bulk export is an explicit, two-person action: school
// staff ask for one class or one establishment with a reason and their
// public key; a second account (DPO or académie admin) with a fresh second
// factor approves; the file, bounded, every pupil read through the policy
// and named in the audit trail, sealed to the requester's key, is
// downloaded once and opens only with the requester's secret key.
// Attacks: self-approval, an approver without a fresh factor, a scope
// larger than one establishment, another establishment, too many rows.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { coffre, tempDir } from './helpers.mjs';
import { startServer, request, closeAgents, FAST_HASH } from './server.mjs';
import { school, signIn, sqlite, ine } from './school.mjs';

const totp = (secret) => {
  const r = spawnSync('oathtool', ['--totp', '-b', secret.replace(/ /g, '')], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
};

async function enrollTotp(port, cookie, from) {
  const e = await request(port, 'POST', '/api/v1/mfa/totp/enroll', { body: {}, cookie, from });
  assert.equal(e.status, 200, e.body);
  const c = await request(port, 'POST', '/api/v1/mfa/totp/confirm', { body: { code: totp(e.json.secret) }, cookie, from });
  assert.equal(c.status, 200, c.body);
  return e.json.secret;
}

function keygen(dir, name) {
  const sk = join(dir, name);
  const r = coffre(['export', 'keygen', '--out', sk]);
  assert.equal(r.code, 0, r.err);
  return { sk, pk: r.out.trim() };
}

test('export: asked by staff, approved by a second person with a fresh factor, sealed to the requester, downloaded once', async (t) => {
  const s = school(t, { more: [['dpo', 'dpo', 'dpo.lyon'], ['admin2', 'academie_admin', 'admin2.lyon']] });
  const dir = tempDir(t);
  const office = keygen(dir, 'office.key');
  const other = keygen(dir, 'other.key');
  const srv = await startServer(t, s.data, [...FAST_HASH, '--export-max-rows', '8']);
  const c = await signIn(srv.port, s.accounts);
  const from = { office: '127.0.50.1', dpo: '127.0.50.2', admin: '127.0.50.3', admin2: '127.0.50.4', teacher: '127.0.50.5', office2: '127.0.50.6' };
  const call = (who, method, path, body) => request(srv.port, method, path, { cookie: c[who], from: from[who], body });
  const ask = (who, scope, extra = {}) => call(who, 'POST', '/api/v1/exports',
    { reason: 'transfert-college', scope, recipient_public_key: office.pk, ...extra });

  // bad requests: a clear 4xx, nothing stored
  const bad = [
    [{ academie: '10' }, {}, 400], [{ establishment: s.E1, class: s.cls['6A'] }, {}, 400], [{}, {}, 400],
    [{ class: 'nothex' }, {}, 400], [{ class: s.cls['6A'] }, { reason: 'pour Mme Martin' }, 400],
    [{ class: s.cls['6A'] }, { recipient_public_key: 'AAAA' }, 400], [{ class: s.cls['6A'] }, { extra: 1 }, 400],
    [{ class: 'f'.repeat(32) }, {}, 404],
    [{ establishment: s.E2 }, {}, 403], [{ class: s.cls['5A'] }, {}, 403],
  ];
  for (const [scope, extra, status] of bad) {
    const r = await ask('office', scope, extra);
    assert.equal(r.status, status, `${JSON.stringify(scope)} ${JSON.stringify(extra)}: ${r.body}`);
  }
  assert.equal((await ask('teacher', { class: s.cls['6A'] })).status, 403);
  assert.equal(sqlite(join(s.data, 'coffre.db'), 'SELECT count(*) FROM exports'), '0');

  // the legitimate request: class 6A (5 pupils)
  let r = await ask('office', { class: s.cls['6A'] });
  assert.equal(r.status, 201, r.body);
  assert.equal(r.json.state, 'pending');
  const xid = r.json.id;
  // not downloadable before approval
  assert.equal((await call('office', 'GET', `/api/v1/exports/${xid}/file`)).status, 409);
  // staff cannot approve, even another establishment's
  assert.equal((await call('office2', 'POST', `/api/v1/exports/${xid}/approve`, {})).status, 403);
  // an approver without a fresh second factor: refused
  r = await call('admin2', 'POST', `/api/v1/exports/${xid}/approve`, {});
  assert.equal(r.status, 403, r.body);
  assert.match(r.json.type, /step-up-required$/);
  // self-approval: the admin asks for one, then tries to approve it, factor fresh
  await enrollTotp(srv.port, c.admin, from.admin);
  r = await call('admin', 'POST', '/api/v1/exports', { reason: 'examens', scope: { establishment: s.E2 }, recipient_public_key: other.pk });
  assert.equal(r.status, 201, r.body);
  const own = r.json.id;
  r = await call('admin', 'POST', `/api/v1/exports/${own}/approve`, {});
  assert.equal(r.status, 403, r.body);
  assert.match(r.json.detail, /second person/);
  // the DPO, factor fresh, approves the office's
  await enrollTotp(srv.port, c.dpo, from.dpo);
  r = await call('dpo', 'POST', `/api/v1/exports/${xid}/approve`, {});
  assert.equal(r.status, 200, r.body);
  assert.equal(r.json.rows, 5);
  assert.equal((await call('admin', 'POST', `/api/v1/exports/${xid}/approve`, {})).status, 409);
  // only the requester downloads, once
  assert.equal((await call('dpo', 'GET', `/api/v1/exports/${xid}/file`)).status, 403);
  r = await call('office', 'GET', `/api/v1/exports/${xid}/file`);
  assert.equal(r.status, 200, r.body);
  assert.equal(r.json.rows, 5);
  const answer = r.body;
  assert.ok(!/ELEVE|Camille|eleve1/.test(answer), 'the file travels sealed');
  r = await call('office', 'GET', `/api/v1/exports/${xid}/file`);
  assert.equal(r.status, 410);

  // too many rows: Collège Un has 10 pupils, the bound is 8
  r = await ask('office', { establishment: s.E1 });
  assert.equal(r.status, 201, r.body);
  r = await call('dpo', 'POST', `/api/v1/exports/${r.json.id}/approve`, {});
  assert.equal(r.status, 422, r.body);
  assert.match(r.json.type, /export-too-large$/);
  // the admin's (Collège Deux, 5 pupils) approved by the DPO: the admin's export fields
  r = await call('dpo', 'POST', `/api/v1/exports/${own}/approve`, {});
  assert.equal(r.status, 200, r.body);
  const adminFile = (await call('admin', 'GET', `/api/v1/exports/${own}/file`)).body;
  closeAgents();
  assert.equal(await srv.stop(), 0);

  // the requester's secret key opens it; another does not
  const f = join(dir, 'export.json');
  writeFileSync(f, answer);
  let o = coffre(['export', 'open', '--secret-key', office.sk, '--in', f]);
  assert.equal(o.code, 0, o.err);
  const doc = JSON.parse(o.out);
  assert.equal(doc.export, xid);
  assert.equal(doc.scope, 'class');
  assert.equal(doc.rows.length, 5);
  assert.deepEqual(doc.rows.map((x) => x.id).sort(), s.st.slice(1, 6).sort());
  assert.deepEqual(doc.rows.map((x) => x.ine).sort(), [1, 2, 3, 4, 5].map(ine).sort());
  assert.ok(doc.rows.every((x) => x.address && x.birth_date && x.class_id === s.cls['6A']));
  o = coffre(['export', 'open', '--secret-key', other.sk, '--in', f]);
  assert.equal(o.code, 1);
  assert.match(o.err, /does not open with this key/);
  // the admin's export leaves out the home address (policy: export fields)
  writeFileSync(f, adminFile);
  o = coffre(['export', 'open', '--secret-key', other.sk, '--in', f]);
  assert.equal(o.code, 0, o.err);
  const adoc = JSON.parse(o.out);
  assert.equal(adoc.rows.length, 5);
  assert.ok(adoc.rows.every((x) => x.address === undefined && x.family_name));

  // the store: file gone once downloaded; states
  assert.equal(sqlite(join(s.data, 'coffre.db'), "SELECT count(*) FROM exports WHERE state = 'downloaded' AND file IS NULL"), '2');
  assert.equal(sqlite(join(s.data, 'coffre.db'), "SELECT count(*) FROM exports WHERE state = 'pending'"), '1');
  // the audit trail: one entry per batch naming every pupil and field; the request and approvals
  const db = join(s.data, 'audit.db');
  const reads = sqlite(db, "SELECT subject||'|'||fields FROM entries WHERE action = 'export.read'").split('\n');
  assert.equal(reads.length, 2);
  const first = reads.find((l) => l.includes(s.st[1]));
  for (let i = 1; i <= 5; i++) assert.ok(first.includes(s.st[i]));
  assert.match(first, /\|ine,family_name,given_names,birth_date,address,email$/);
  const trail = sqlite(db, "SELECT action||':'||outcome FROM entries WHERE action LIKE 'export.%'");
  for (const x of ['export.request:ok', 'export.request:denied', 'export.approve:ok', 'export.approve:denied', 'export.download:ok'])
    assert.ok(trail.includes(x), x);
  assert.doesNotMatch(sqlite(db, 'SELECT * FROM entries'), /ELEVE|Camille|rue des|Mme Martin/);
  assert.equal(coffre(['audit', 'verify', '--data', s.data]).code, 0);
});
