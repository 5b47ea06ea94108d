// crash.test.mjs - kill -9 at random moments during a mixed stream of
// writes (activations, sign-ins, password changes, provisioning and
// incident commands through the admin API), 30 times.  After each kill: SQLite's integrity check
// passes, `coffre audit verify` passes, and every write whose answer the
// client received is there (the test keeps its own ledger).  Bounded:
// 30 rounds of at most ~1 s of traffic each, loopback only.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { coffre, tempDir } from './helpers.mjs';
import { startServer, request, cookieOf, provisionAdmin, closeAgents, FAST_HASH, STRONG } from './server.mjs';

function sqlite(db, sql) {
  const r = spawnSync('sqlite3', [db, sql], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}

test('kill -9 thirty times during mixed writes: integrity, audit and every acknowledged write survive', async (t) => {
  const root = tempDir(t);
  const data = join(root, 'data');
  assert.equal(coffre(['init', '--data', data, '--academie', '10']).code, 0);
  assert.equal(coffre(['demo-data', '--data', data, '--establishments', '1', '--students-per', '300', '--guardians-per', '0']).code, 0);
  const codesFile = join(root, 'codes.tsv');
  assert.equal(coffre(['account', 'provision', '--data', data, '--role', 'student', '--establishment', '0990000M',
    '--all', '1', '--out', codesFile]).code, 0);
  const pending = readFileSync(codesFile, 'utf8').trim().split('\n').map((l) => l.split('\t'));
  const admin = provisionAdmin(data);
  const db = join(data, 'coffre.db');
  const active = new Map();            // login -> password the server acknowledged
  const uncertain = new Map();         // login -> a change sent but not answered (may have landed)
  const busy = new Set();              // logins a worker is using: one at a time, so the ledger is exact
  const provisioned = new Set();       // account ids the admin API acknowledged
  let adminCookie = null, adminPending = true, kills = 0, acked = 0;
  let revokesAcked = 0, lastRevokeSentS = 0;  // incidents/revoke-sessions the API acknowledged

  for (let round = 0; round < 30; round++) {
    const srv = await startServer(t, data, FAST_HASH);
    if (adminPending) {
      const a = await request(srv.port, 'POST', '/api/v1/activate',
        { body: { login: admin.login, code: admin.code, password: STRONG }, from: '127.0.50.1' });
      assert.equal(a.status, 200, a.body);
      adminPending = false;
    } else {
      const a = await request(srv.port, 'POST', '/api/v1/login',
        { body: { login: admin.login, password: STRONG }, from: '127.0.50.1' });
      assert.equal(a.status, 200, a.body);
      adminCookie = cookieOf(a);
    }
    let stop = false;
    const workers = Array.from({ length: 4 }, async (_, w) => {
      const from = `127.0.51.${w + 1}`;
      while (!stop) {
        try {
          const kind = randomInt(5);
          if (kind === 0 && pending.length) {                   // activation
            const [login, code] = pending.pop();
            const pw = `${STRONG} ${login}`;
            const r = await request(srv.port, 'POST', '/api/v1/activate', { body: { login, code, password: pw }, from });
            if (r.status === 200) { active.set(login, pw); acked++; }
          } else if (kind === 1 && active.size) {               // sign-in
            const logins = [...active.keys()].filter((l) => !uncertain.has(l) && !busy.has(l));
            if (!logins.length) continue;
            const login = logins[randomInt(logins.length)];
            busy.add(login);
            try {
              await request(srv.port, 'POST', '/api/v1/login', { body: { login, password: active.get(login) }, from });
            } finally { busy.delete(login); }
          } else if (kind === 2 && active.size) {               // password change
            const logins = [...active.keys()].filter((l) => !uncertain.has(l) && !busy.has(l));
            if (!logins.length) continue;
            const login = logins[randomInt(logins.length)];
            busy.add(login);
            try {
              const s = await request(srv.port, 'POST', '/api/v1/login',
                { body: { login, password: active.get(login), want_token: true }, from });
              if (s.status !== 200) continue;
              const np = `${STRONG} ${login} ${round}.${randomInt(1000)}`;
              uncertain.set(login, np);         // until answered: old or new may hold
              const r = await request(srv.port, 'POST', '/api/v1/password',
                { body: { current: active.get(login), new: np }, token: s.json.token, from });
              if (r.status === 200) { active.set(login, np); acked++; }
              if (r.status) uncertain.delete(login);
            } finally { busy.delete(login); }
          } else if (kind === 3 && adminCookie) {               // provisioning by the admin API
            const r = await request(srv.port, 'POST', '/api/v1/accounts',
              { body: { role: 'academie_admin', login: `admin.${round}.${w}.${randomInt(1e6)}` }, cookie: adminCookie, from });
            if (r.status === 201) { provisioned.add(r.json.account.id); acked++; }
          } else if (kind === 4 && adminCookie) {               // an incident command (one transaction)
            const sentS = Math.floor(Date.now() / 1000);
            const r = await request(srv.port, 'POST', '/api/v1/incidents/revoke-sessions',
              { body: { establishment: '0990000M' }, cookie: adminCookie, from });
            if (r.status === 200) { revokesAcked++; lastRevokeSentS = Math.max(lastRevokeSentS, sentS); acked++; }
          }
        } catch { return; }                                     // the server died under us
      }
    });
    await new Promise((res) => setTimeout(res, 150 + randomInt(700)));
    await srv.kill9();
    kills++;
    stop = true;
    await Promise.all(workers);
    closeAgents();
    // after the crash: integrity, the trail, and the ledger
    assert.equal(sqlite(db, 'PRAGMA integrity_check'), 'ok');
    assert.equal(sqlite(join(data, 'audit.db'), 'PRAGMA integrity_check'), 'ok');
    const v = coffre(['audit', 'verify', '--data', data]);
    assert.equal(v.code, 0, v.out + v.err);
    const ids = new Set(sqlite(db, 'SELECT lower(hex(id)) FROM accounts').split('\n'));
    for (const id of provisioned) assert.ok(ids.has(id), `acknowledged provisioning ${id} lost`);
    // every acknowledged revocation is in the trail, and no pupil session
    // opened a whole second before the last one is still live
    assert.ok(Number(sqlite(join(data, 'audit.db'),
      "SELECT count(*) FROM entries WHERE action = 'incident.revoke-sessions'")) >= revokesAcked);
    assert.equal(sqlite(db, `SELECT count(*) FROM sessions s JOIN accounts a ON a.id = s.account_id
      WHERE a.role = 'student' AND s.revoked = 0 AND s.created < ${lastRevokeSentS}`), '0');
    assert.equal(Number(sqlite(db, "SELECT count(*) FROM accounts WHERE state = 'active' AND role = 'student'")) >= active.size, true);
  }
  // every acknowledged password (activation or change) still signs in; a
  // change that was sent but never answered may have landed or not
  const srv = await startServer(t, data, FAST_HASH);
  let i = 0;
  for (const [login, pw] of active) {
    const from = `127.0.52.${(i++ % 250) + 1}`;
    let r = await request(srv.port, 'POST', '/api/v1/login', { body: { login, password: pw }, from });
    if (r.status !== 200 && uncertain.has(login)) {
      await new Promise((res) => setTimeout(res, 1100));      // the failure above costs 1 s
      r = await request(srv.port, 'POST', '/api/v1/login', { body: { login, password: uncertain.get(login) }, from });
    }
    assert.equal(r.status, 200, `${login}: ${r.body}`);
  }
  closeAgents();
  assert.equal(await srv.stop(), 0);
  console.log(`# crash safety: ${kills} kill -9, ${acked} acknowledged writes (${active.size} accounts, ${provisioned.size} provisioned by the API, ${revokesAcked} session revocations), none lost`);
  assert.ok(acked > 20);
});
