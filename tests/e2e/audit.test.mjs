// audit.test.mjs - the audit trail of a real server: every response the
// client received has its durable entry even after kill -9, the trail
// verifies, and any edit, deletion, insertion or truncation is detected
// and named.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { cpSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { coffre, tempDir } from './helpers.mjs';
import { startServer, request, provisionStudent, closeAgents, FAST_HASH, STRONG } from './server.mjs';

function sqlite(db, sql) {
  const r = spawnSync('sqlite3', [db, sql], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}

const ine = (i) => {
  const n = 999000000 + i;
  return String(n).padStart(10, '0') + 'ABCDEFGHJKLMNPRSTUVWXYZ'[n % 23];
};

async function activeAccounts(t, n) {
  const root = tempDir(t);
  const data = join(root, 'data');
  const init = coffre(['init', '--data', data, '--academie', '10']);
  assert.equal(init.code, 0);
  const seed = init.out.match(/initial audit seed \(epoch 0\): ([0-9a-f]{64})/)[1];
  assert.equal(coffre(['demo-data', '--data', data, '--establishments', '1', '--students-per', '20',
    '--guardians-per', '0']).code, 0);
  const accts = [];
  for (let i = 1; i <= n; i++) accts.push(provisionStudent(data, ine(i)));
  const srv = await startServer(t, data, FAST_HASH);
  for (const [i, a] of accts.entries()) {
    const r = await request(srv.port, 'POST', '/api/v1/activate',
      { body: { login: a.login, code: a.code, password: `${STRONG} ${i}` }, from: `127.0.13.${i + 1}` });
    assert.equal(r.status, 200, r.body);
    a.password = `${STRONG} ${i}`;
  }
  return { root, data, seed, accts, srv };
}

test('kill -9 during a stream of sign-ins loses no entry of any answered request', async (t) => {
  const { root, data, seed, accts, srv: first } = await activeAccounts(t, 6);
  let srv = first;
  const acknowledged = [];
  for (let round = 0; round < 3; round++) {
    let stop = false;
    const killAt = 300 + randomInt(1200);
    const loops = accts.map(async (a, w) => {
      while (!stop) {
        try {
          const r = await request(srv.port, 'POST', '/api/v1/login',
            { body: { login: a.login, password: a.password }, from: `127.0.14.${w + 1}` });
          if (r.status === 200) acknowledged.push(r.json.session.ref);
        } catch { return; }        // the server died under us
      }
    });
    await new Promise((res) => setTimeout(res, killAt));
    await srv.kill9();
    stop = true;
    await Promise.all(loops);
    closeAgents();
    // what the client saw is in the trail, and the trail verifies
    const logged = new Set(sqlite(join(data, 'audit.db'),
      "SELECT session FROM entries WHERE action = 'login' AND outcome = 'ok'").split('\n'));
    const missing = acknowledged.filter((ref) => !logged.has(ref));
    assert.deepEqual(missing, [], `${missing.length} answered sign-ins have no audit entry`);
    const v = coffre(['audit', 'verify', '--data', data]);
    assert.equal(v.code, 0, v.out + v.err);
    srv = await startServer(t, data, FAST_HASH);      // recovers and goes on
  }
  console.log(`# kill -9: 3 kills, ${acknowledged.length} answered sign-ins, every one in the trail`);
  assert.ok(acknowledged.length > 10);
  assert.equal(await srv.stop(), 0);
  const seedFile = join(root, 'seed');
  spawnSync('sh', ['-c', `umask 077; echo ${seed} > '${seedFile}'`]);
  const v = coffre(['audit', 'verify', '--data', data, '--initial-seed', seedFile]);
  assert.equal(v.code, 0, v.out + v.err);
  assert.match(v.out, /checked against the auditor's initial seed/);
});

test('tampering with the trail is detected and named: edit, delete, insert, truncate', async (t) => {
  const { root, data, accts, srv } = await activeAccounts(t, 3);
  for (const a of accts)
    assert.equal((await request(srv.port, 'POST', '/api/v1/login',
      { body: { login: a.login, password: a.password }, from: '127.0.15.1' })).status, 200);
  closeAgents();
  assert.equal(await srv.stop(), 0);
  assert.equal(coffre(['audit', 'verify', '--data', data]).code, 0);
  const n = Number(sqlite(join(data, 'audit.db'), 'SELECT max(seq) FROM entries'));
  assert.ok(n > 8);
  const k = 5;
  const cases = {
    edit: `UPDATE entries SET outcome = 'denied' WHERE seq = ${k}`,
    delete: `DELETE FROM entries WHERE seq = ${k}`,
    insert: `INSERT INTO entries SELECT ${n + 1}, time_ms, actor, session, addr, action, subject, fields, outcome, hash FROM entries WHERE seq = ${n}`,
    truncate: `DELETE FROM entries WHERE seq > ${n - 3}; DELETE FROM checkpoints WHERE epoch = (SELECT max(epoch) FROM checkpoints)`,
  };
  for (const [name, sql] of Object.entries(cases)) {
    const copy = join(root, `copy-${name}`);
    cpSync(data, copy, { recursive: true });
    sqlite(join(copy, 'audit.db'), sql);
    const v = coffre(['audit', 'verify', '--data', copy]);
    assert.equal(v.code, 1, `${name}: ${v.out}${v.err}`);
    assert.match(v.out, /TAMPERED/, name);
    console.log(`# ${name}: ${v.out.split('\n')[0]}`);
    if (name === 'edit' || name === 'delete')
      assert.match(v.out, new RegExp(`entry ${k}\\b|${k}\\b`), name);
  }
});
