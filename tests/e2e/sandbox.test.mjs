// sandbox.test.mjs - the process hardening of docs/hardening.md: the
// seccomp allow-list kills (or, --seccomp log, logs) a forbidden system
// call; a filtered server still answers every route of its route table;
// root is refused without --user and dropped, verified, with it; the
// systemd unit passes systemd-analyze.  Loopback only; every loop bounded
// by the route table or the list of forbidden calls.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { coffre, tempDir, BIN } from './helpers.mjs';
import { startServer, request, cookieOf, provisionAdmin, closeAgents, FAST_HASH, STRONG } from './server.mjs';

const FORBIDDEN = { ptrace: 'ptrace', execve: 'execve', mount: 'mount', setuid: 'setuid',
                    fork: 'clone', 'wx-mmap': 'mmap', 'packet-socket': 'socket' };
// An ASan build's filter also allows what LeakSanitizer needs at exit
// (ptrace, a clone that is not a thread): docs/hardening.md.
if (process.env.COFFRE_SANITIZED) { delete FORBIDDEN.ptrace; delete FORBIDDEN.fork; }

function status(pid) {
  return readFileSync(`/proc/${pid}/status`, 'utf8');
}

test('seccomp kill: each forbidden call kills the process with SIGSYS, from a thread started before the filter', () => {
  for (const call of Object.keys(FORBIDDEN)) {
    const r = spawnSync(BIN, ['sandbox-selftest', '--seccomp', 'kill', '--call', call], { encoding: 'utf8', timeout: 30000 });
    assert.equal(r.signal, 'SIGSYS', `${call}: ${r.status} ${r.stdout} ${r.stderr}`);
    // the filter was on and what the server needs still worked before it
    assert.match(r.stdout, /filter installed, mode kill \(Seccomp:\s+2\); allowed calls work/);
    assert.doesNotMatch(r.stdout, /forbidden call .* returned/);
  }
});

test('seccomp log: a forbidden call is logged by name and fails with ENOSYS; off: it runs', () => {
  for (const [call, sys] of Object.entries(FORBIDDEN)) {
    const r = spawnSync(BIN, ['sandbox-selftest', '--seccomp', 'log', '--call', call], { encoding: 'utf8', timeout: 30000 });
    assert.equal(r.status, 0, `${call}: ${r.signal} ${r.stdout} ${r.stderr}`);
    const line = r.stderr.split('\n').find((l) => l.includes('seccomp: forbidden system call'));
    assert.ok(line, r.stderr);
    assert.equal(JSON.parse(line).syscall, sys);
    assert.match(r.stdout, new RegExp(`forbidden call '${call}' .*returned -1 \\(Function not implemented\\)`));
  }
  const off = spawnSync(BIN, ['sandbox-selftest', '--seccomp', 'off', '--call', 'execve'], { encoding: 'utf8', timeout: 30000 });
  assert.equal(off.status, 0, off.stderr);
  assert.match(off.stdout, /Seccomp:\s+0/);
  assert.match(off.stdout, /returned -1 \(No such file or directory\)/);   // it ran: ENOENT, not ENOSYS
  const bad = coffre(['sandbox-selftest', '--seccomp', 'maybe']);
  assert.equal(bad.code, 2);
  assert.equal(coffre(['serve', '--data', '/nonexistent', '--seccomp', 'maybe']).code, 2);
});

// One request per route of `coffre routes`, '*' replaced by a made-up id,
// a JSON route sent an empty object: every answer is a deliberate one
// (no 5xx), the server is still alive after each, and never logs a
// forbidden call (startServer's after-hook checks the log too).
test('a seccomp-filtered server (kill) answers every route of its route table', async (t) => {
  const routes = coffre(['routes']).out.trim().split('\n').map((l) => JSON.parse(l));
  assert.ok(routes.length >= 20, `${routes.length} routes`);
  assert.ok(routes.some((r) => r.path === '/healthz') && routes.some((r) => r.path === '/api/v1/login'));
  for (const r of routes) assert.deepEqual(Object.keys(r), ['method', 'path', 'name', 'flags', 'auth']);

  const data = join(tempDir(t), 'data');
  assert.equal(coffre(['init', '--data', data, '--academie', '10']).code, 0);
  assert.equal(coffre(['demo-data', '--data', data, '--establishments', '1', '--students-per', '10']).code, 0);
  const admin = provisionAdmin(data);
  const srv = await startServer(t, data, [...FAST_HASH, '--seccomp', 'kill']);
  assert.match(status(srv.child.pid), /Seccomp:\s+2/);
  const from = '127.0.60.1';
  const act = await request(srv.port, 'POST', '/api/v1/activate', { body: { login: admin.login, code: admin.code, password: STRONG }, from });
  assert.equal(act.status, 200, act.body);
  const login = await request(srv.port, 'POST', '/api/v1/login', { body: { login: admin.login, password: STRONG }, from });
  assert.equal(login.status, 200, login.body);
  const cookie = cookieOf(login);
  const seen = {};
  for (const r of routes) {
    const path = r.path.endsWith('*') ? r.path.slice(0, -1) + (r.path.includes('incidents') ? 'revoke-sessions' : randomBytes(16).toString('hex')) : r.path;
    if (path === '/api/v1/logout') continue;                      // would end the session the others use
    const body = r.flags.includes('json_body') ? (path.includes('incidents') ? { dry_run: true } : {}) : undefined;
    const res = await request(srv.port, r.method, path, { body, cookie: r.flags.includes('preauth') ? undefined : cookie, from });
    seen[`${r.method} ${r.path}`] = res.status;
    assert.ok(res.status < 500, `${r.method} ${path}: ${res.status} ${res.body}`);
    assert.equal(srv.child.exitCode, null, `died after ${r.method} ${path}: ${srv.child.signalCode}`);
  }
  const out = await request(srv.port, 'POST', '/api/v1/logout', { cookie, from });
  assert.ok(out.status < 500);
  console.log(`# seccomp kill: ${Object.keys(seen).length + 1} routes answered: ${JSON.stringify(seen)}`);
  closeAgents();
  assert.equal(await srv.stop(), 0);                              // the drain and final checkpoint too
  assert.doesNotMatch(srv.log, /seccomp: forbidden/);
  assert.equal(coffre(['audit', 'verify', '--data', data]).code, 0);
});

test('root: refused without --user; with it the server drops to that user, verified', { skip: process.getuid() !== 0 && 'not running as root' }, async (t) => {
  const root = tempDir(t);
  const data = join(root, 'data');
  assert.equal(coffre(['init', '--data', data, '--academie', '10']).code, 0);
  const bare = coffre(['serve', '--data', data, '--listen', '127.0.0.1:0']);
  assert.equal(bare.code, 1);
  assert.match(bare.err, /refusing to serve as root: give --user NAME/);
  const notOwned = coffre(['serve', '--data', data, '--listen', '127.0.0.1:0', '--user', 'nobody']);
  assert.equal(notOwned.code, 1);
  assert.match(notOwned.err, /belongs to uid 0, not to 'nobody'/);
  assert.match(coffre(['serve', '--data', data, '--user', 'root']).err, /uid or gid 0 is root/);
  assert.match(coffre(['serve', '--data', data, '--user', 'no-such-user-x']).err, /no such user/);
  // startServer gives the data dir to nobody and adds --user nobody
  const srv = await startServer(t, data, FAST_HASH);
  const st = status(srv.child.pid);
  assert.match(st, /^Uid:\s+65534\s+65534\s+65534\s+65534$/m);
  assert.match(st, /^Gid:\s+65534\s+65534\s+65534\s+65534$/m);
  assert.match(st, /^Groups:\s+65534\s*$/m);
  assert.match(st, /^CapEff:\s+0+$/m);
  assert.match(st, /^NoNewPrivs:\s+1$/m);
  assert.match(st, /^Seccomp:\s+2$/m);
  assert.match(srv.log, /"msg":"privileges dropped","user":"nobody"/);
  const h = await request(srv.port, 'GET', '/healthz', { from: '127.0.61.1' });
  assert.equal(h.status, 200);
  closeAgents();
  assert.equal(await srv.stop(), 0);                              // final checkpoint rewrote the keyring as nobody
  assert.equal(coffre(['audit', 'verify', '--data', data]).code, 0);
});

test('dist/coffre.service passes systemd-analyze verify (and a broken copy does not)', (t) => {
  const dir = tempDir(t);
  const unit = readFileSync(new URL('../../dist/coffre.service', import.meta.url), 'utf8');
  assert.match(unit, /^ExecStart=\/usr\/local\/bin\/coffre serve /m);
  for (const k of ['NoNewPrivileges=yes', 'ProtectSystem=strict', 'ReadWritePaths=/var/lib/coffre', 'PrivateTmp=yes',
                   'MemoryDenyWriteExecute=yes', 'RestrictAddressFamilies=', 'SystemCallFilter=@system-service',
                   'CapabilityBoundingSet=\n', 'ProtectHome=yes', 'PrivateDevices=yes', 'LockPersonality=yes',
                   'RestrictNamespaces=yes', 'RestrictRealtime=yes', 'UMask=0077', 'User=coffre'])
    assert.ok(unit.includes(k), k);
  // verify checks that ExecStart exists: point it at the built binary
  mkdirSync(join(dir, 'u'));
  const good = join(dir, 'u', 'coffre.service');
  writeFileSync(good, unit.replaceAll('/usr/local/bin/coffre', BIN));
  const v = spawnSync('systemd-analyze', ['verify', good], { encoding: 'utf8' });
  if (v.error) { t.skip('systemd-analyze not installed'); return; }
  assert.equal(v.status, 0, v.stderr);
  assert.equal(v.stderr.trim(), '', v.stderr);
  const broken = join(dir, 'u', 'broken.service');
  writeFileSync(broken, unit.replaceAll('/usr/local/bin/coffre', BIN).replace('ProtectSystem=strict', 'ProtectSystm=strict'));
  const b = spawnSync('systemd-analyze', ['verify', broken], { encoding: 'utf8' });
  assert.match(b.stderr, /Unknown key/);
  const s = spawnSync('systemd-analyze', ['security', '--offline=yes', good], { encoding: 'utf8' });
  const m = (s.stdout + s.stderr).match(/Overall exposure level for \S+: ([\d.]+)/);
  if (m) {
    console.log(`# systemd-analyze security: exposure ${m[1]} (0 safest, 10 unsafe)`);
    assert.ok(Number(m[1]) <= 2.0, m[0]);
  }
});
