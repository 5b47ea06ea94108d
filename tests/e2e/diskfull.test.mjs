// diskfull.test.mjs - the data directory on a full disk, then read-only: a
// small tmpfs mounted by the test (root only; skipped with the reason
// otherwise).  A full disk: clear 503 problem documents (never a 500),
// /healthz says "failing", nothing acknowledged is lost, and once space
// is back and the server restarted, integrity_check, audit verify and
// sign-in pass.  Read-only: serve and the CLI refuse with a message naming
// the file and the reason, and nothing is damaged.  Bounded: the filler
// is at most 64 x 1 MiB, each poll at most 10 s.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { mkdtempSync, openSync, writeSync, closeSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';
import { coffre } from './helpers.mjs';
import { startServer, request, provisionAdmin, closeAgents, FAST_HASH, STRONG } from './server.mjs';

// -> [mount point, null] or [null, why not]; unmounted, then removed, after t
function mountTmpfs(t, mib) {
  if (process.getuid?.() !== 0) return [null, 'not root: cannot mount a small tmpfs (or a loop file)'];
  const dir = mkdtempSync(join(tmpdir(), 'coffre-e2e-mnt-'));
  const m = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${mib}m,mode=0755`, 'tmpfs', dir], { encoding: 'utf8' });
  if (m.status !== 0) { rmSync(dir, { recursive: true, force: true }); return [null, `mount refused (${m.stderr.trim()}): no tmpfs here`]; }
  t.after(() => { spawnSync('umount', ['-l', dir]); rmSync(dir, { recursive: true, force: true }); });
  return [dir, null];
}

function sqlite(db, sql) {
  const r = spawnSync('sqlite3', [db, sql], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : `error: ${r.stderr}`;
}

function fill(dir) {
  const fd = openSync(join(dir, 'filler'), 'w');
  const mib = Buffer.alloc(1 << 20, 0x55);
  let n = 0;
  try {
    for (; n < 64; n++) writeSync(fd, mib);
  } catch (e) {
    assert.equal(e.code, 'ENOSPC');
    // and the last few bytes too
    try { for (let i = 0; i < 4096; i++) writeSync(fd, mib, 0, 256); } catch { /* full */ }
  } finally { closeSync(fd); }
  return n;
}

async function until(fn, ms = 10000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v || Date.now() > end) return v;
    await new Promise((res) => setTimeout(res, 100));
  }
}

test('full disk: clear 503s, /healthz failing, no corruption, recovers after a restart', async (t) => {
  const [mnt, why] = mountTmpfs(t, 12);
  if (why) { console.log(`# skipped: ${why}`); t.skip(why); return; }
  const data = join(mnt, 'data');
  assert.equal(coffre(['init', '--data', data, '--academie', '10']).code, 0);
  assert.equal(coffre(['demo-data', '--data', data, '--establishments', '1', '--students-per', '20', '--guardians-per', '0']).code, 0);
  const admin = provisionAdmin(data);
  let srv = await startServer(t, data, FAST_HASH);
  const from = '127.0.80.1';
  const act = await request(srv.port, 'POST', '/api/v1/activate', { body: { login: admin.login, code: admin.code, password: STRONG }, from });
  assert.equal(act.status, 200, act.body);                    // acknowledged: must survive
  assert.equal((await request(srv.port, 'GET', '/healthz', { from })).status, 200);

  const mib = fill(mnt);
  const statuses = {};
  for (let i = 0; i < 5; i++) {
    const r = await request(srv.port, 'POST', '/api/v1/login', { body: { login: admin.login, password: STRONG }, from });
    statuses[r.status] = (statuses[r.status] ?? 0) + 1;
    assert.notEqual(r.status, 500, r.body);
    if (r.status !== 200) {
      assert.equal(r.status, 503, r.body);
      assert.equal(r.json.status, 503);
      assert.match(r.json.detail, /could not be recorded/);
    }
  }
  assert.ok(statuses[503] > 0, JSON.stringify(statuses));
  const failing = await until(async () => (await request(srv.port, 'GET', '/healthz', { from })).status === 503);
  assert.ok(failing, '/healthz still says ok on a full disk');
  assert.match(srv.log, /"msg":"audit trail failed: nothing more is served".*"why":"database or disk is full"/);
  console.log(`# full disk (${mib} MiB filler): sign-ins answered ${JSON.stringify(statuses)}, /healthz 503 "failing", log names the cause`);

  rmSync(join(mnt, 'filler'));
  closeAgents();
  assert.equal(await srv.stop(), 0);
  assert.equal(sqlite(join(data, 'coffre.db'), 'PRAGMA integrity_check'), 'ok');
  assert.equal(sqlite(join(data, 'audit.db'), 'PRAGMA integrity_check'), 'ok');
  const v = coffre(['audit', 'verify', '--data', data]);
  assert.equal(v.code, 0, v.out + v.err);
  srv = await startServer(t, data, FAST_HASH);
  assert.equal((await request(srv.port, 'GET', '/healthz', { from })).status, 200);
  const again = await request(srv.port, 'POST', '/api/v1/login', { body: { login: admin.login, password: STRONG }, from });
  assert.equal(again.status, 200, again.body);                // the activation before the disk filled is there
  closeAgents();
  assert.equal(await srv.stop(), 0);
});

test('read-only data directory: serve and the CLI refuse clearly, nothing damaged', async (t) => {
  const [mnt, why] = mountTmpfs(t, 12);
  if (why) { console.log(`# skipped: ${why}`); t.skip(why); return; }
  const data = join(mnt, 'data');
  assert.equal(coffre(['init', '--data', data, '--academie', '10']).code, 0);
  assert.equal(coffre(['demo-data', '--data', data, '--establishments', '1', '--students-per', '5', '--guardians-per', '0']).code, 0);
  const admin = provisionAdmin(data);
  let srv = await startServer(t, data, FAST_HASH);            // gives data to nobody, serves once
  const from = '127.0.81.1';
  assert.equal((await request(srv.port, 'POST', '/api/v1/activate',
    { body: { login: admin.login, code: admin.code, password: STRONG }, from })).status, 200);
  closeAgents();
  assert.equal(await srv.stop(), 0);

  assert.equal(spawnSync('mount', ['-o', 'remount,ro', mnt]).status, 0);
  const serve = coffre(['serve', '--data', data, '--listen', '127.0.0.1:0', '--user', 'nobody']);
  assert.equal(serve.code, 1);
  assert.match(serve.err, /cannot open: Read-only file system/);
  const verify = coffre(['audit', 'verify', '--data', data]);
  assert.notEqual(verify.code, 0);
  assert.match(verify.err, /audit '.*audit\.db': cannot (read|open)/);
  assert.doesNotMatch(verify.err, /schema version -1/);
  const find = coffre(['student', 'find', '--data', data, '--ine', '0999000001S']);
  assert.notEqual(find.code, 0);
  assert.match(find.err, /store '.*coffre\.db'/);
  console.log(`# read-only: serve: ${serve.err.trim()}; verify: ${verify.err.trim()}; student find: ${find.err.trim()}`);

  assert.equal(spawnSync('mount', ['-o', 'remount,rw', mnt]).status, 0);
  assert.equal(sqlite(join(data, 'coffre.db'), 'PRAGMA integrity_check'), 'ok');
  assert.equal(coffre(['audit', 'verify', '--data', data]).code, 0);
  srv = await startServer(t, data, FAST_HASH);
  assert.equal((await request(srv.port, 'POST', '/api/v1/login', { body: { login: admin.login, password: STRONG }, from })).status, 200);
  closeAgents();
  assert.equal(await srv.stop(), 0);
});
