// soak.test.mjs - overload soak: wrk on loopback with 450 connections of a
// signed-in pupil's mixed GETs (own record through guard, policy and a
// durable audit entry; session; sessions; health; metrics; a 404) plus 50
// connections of a sign-in flood at the default Argon2id cost, for
// SOAK_SECONDS (30; 15 under ASan).  No crash, no 5xx but the deliberate
// 503, /healthz answering throughout, a legitimate signed-in request
// answered within LEGIT_MAX_MS all along, and RSS and open descriptors back
// to flat afterwards (printed before / after from /proc/PID).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFileSync, readdirSync } from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { coffre, tempDir } from './helpers.mjs';
import { startServer, request, cookieOf, provisionStudent, provisionAdmin, closeAgents, STRONG } from './server.mjs';

const SANITIZED = !!process.env.COFFRE_SANITIZED;
const SECS = Number(process.env.SOAK_SECONDS ?? (SANITIZED ? 15 : 30));
const LEGIT_MAX_MS = SANITIZED ? 10000 : 5000;   // the stated bound, per request
const HAVE_WRK = spawnSync('wrk', ['--version']).error === undefined;

const rssKiB = (pid) => Number(readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)[1]);
const fds = (pid) => readdirSync(`/proc/${pid}/fd`).length;
const sleep = (ms) => new Promise((res) => setTimeout(res, ms));
const pct = (a, p) => a.length ? a[Math.min(a.length - 1, Math.floor(a.length * p))] : NaN;

async function wrk(port, script, conns, secs, env) {
  const child = spawn('wrk', ['-t2', `-c${conns}`, `-d${secs}s`, '--timeout', '10s', '-s',
    new URL(`./soak/${script}`, import.meta.url).pathname, `http://127.0.0.1:${port}/`],
    { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { out += d; });
  const [code] = await once(child, 'exit');
  const m = out.match(/^SOAK (.*)$/m);
  assert.ok(m, `wrk ${script} exited ${code}: ${out}`);
  return JSON.parse(m[1]);
}

test(`overload soak: ${SECS} s of 450 mixed + 50 sign-in flood connections (wrk)`, { skip: !HAVE_WRK && 'wrk not installed' }, async (t) => {
  const data = join(tempDir(t), 'data');
  assert.equal(coffre(['init', '--data', data, '--academie', '10']).code, 0);
  assert.equal(coffre(['demo-data', '--data', data, '--establishments', '1', '--students-per', '20', '--guardians-per', '0']).code, 0);
  const pupil = provisionStudent(data, '0999000001S');
  const admin = provisionAdmin(data);
  const srv = await startServer(t, data, []);                 // default Argon2id: t=2, 19 MiB, 2 workers
  const pid = srv.child.pid;
  const from = '127.0.70.1';
  for (const [who, login, code] of [['pupil', pupil.login, pupil.code], ['admin', admin.login, admin.code]]) {
    const r = await request(srv.port, 'POST', '/api/v1/activate', { body: { login, code, password: STRONG }, from });
    assert.equal(r.status, 200, `${who}: ${r.body}`);
  }
  const pl = await request(srv.port, 'POST', '/api/v1/login', { body: { login: pupil.login, password: STRONG }, from });
  const al = await request(srv.port, 'POST', '/api/v1/login', { body: { login: admin.login, password: STRONG }, from: '127.0.70.2' });
  assert.equal(pl.status, 200, pl.body);
  assert.equal(al.status, 200, al.body);
  const env = { SOAK_COOKIE: cookieOf(pl), SOAK_RECORD: `/api/v1/students/${pupil.person}` };
  const own = await request(srv.port, 'GET', env.SOAK_RECORD, { cookie: env.SOAK_COOKIE, from });
  assert.equal(own.status, 200, own.body);

  // warm-up at low concurrency, so "before" counts the pools and caches
  await wrk(srv.port, 'mixed.lua', 20, 3, env);
  await sleep(1500);
  const before = { rss: rssKiB(pid), fds: fds(pid) };

  // probes on their own keep-alive connections, opened before the load
  const health = [], legit = [];
  let stop = false;
  const probe = async (list, path, opts) => {
    while (!stop) {
      const t0 = process.hrtime.bigint();
      let status = 0;
      try { status = (await request(srv.port, 'GET', path, opts)).status; } catch { status = -1; }
      list.push({ status, ms: Number(process.hrtime.bigint() - t0) / 1e6 });
      await sleep(200);
    }
  };
  const probes = [probe(health, '/healthz', { from: '127.0.70.3' }),
                  probe(legit, '/api/v1/session', { cookie: cookieOf(al), from: '127.0.70.2' })];
  await sleep(300);
  const [mixed, flood] = await Promise.all([wrk(srv.port, 'mixed.lua', 450, SECS, env),
                                            wrk(srv.port, 'flood.lua', 50, SECS, {})]);
  stop = true;
  await Promise.all(probes);
  closeAgents();
  await sleep(3000);                                          // connections closed, queues drained
  const after = { rss: rssKiB(pid), fds: fds(pid) };

  const lat = legit.map((p) => p.ms).sort((a, b) => a - b);
  const hlat = health.map((p) => p.ms).sort((a, b) => a - b);
  console.log(`# soak ${SECS} s: mixed ${JSON.stringify(mixed)}`);
  console.log(`# soak: sign-in flood ${JSON.stringify(flood)}`);
  console.log(`# soak: legitimate GET /api/v1/session: ${legit.length} probes, p50 ${pct(lat, 0.5).toFixed(1)} ms, ` +
              `p99 ${pct(lat, 0.99).toFixed(1)} ms, max ${lat.at(-1).toFixed(1)} ms (bound ${LEGIT_MAX_MS} ms); ` +
              `/healthz ${health.length} probes, max ${hlat.at(-1).toFixed(1)} ms`);
  console.log(`# soak: RSS ${(before.rss / 1024).toFixed(1)} -> ${(after.rss / 1024).toFixed(1)} MiB, ` +
              `open fds ${before.fds} -> ${after.fds}`);

  assert.equal(srv.child.exitCode, null, `server died: ${srv.child.signalCode}`);
  for (const [name, r] of [['mixed', mixed], ['flood', flood]])
    for (const s of Object.keys(r.statuses))
      assert.ok(Number(s) < 500 || Number(s) === 503, `${name}: ${r.statuses[s]} answers ${s}`);
  assert.ok(mixed.statuses['200'] > 1000, `mixed: only ${mixed.statuses['200']} answers 200`);
  assert.ok((flood.statuses['401'] ?? 0) + (flood.statuses['429'] ?? 0) + (flood.statuses['503'] ?? 0) > 0);
  assert.ok(health.length >= SECS * 2, `${health.length} health probes`);
  for (const h of health) assert.equal(h.status, 200, `/healthz answered ${h.status}`);
  for (const p of legit) assert.equal(p.status, 200, `legitimate request answered ${p.status}`);
  assert.ok(lat.at(-1) <= LEGIT_MAX_MS, `legitimate request took ${lat.at(-1)} ms`);
  assert.ok(after.fds <= before.fds + 2, `fds ${before.fds} -> ${after.fds}`);
  // Argon2id's 2 x 19 MiB come and go; what stays must not grow with load
  assert.ok(after.rss <= before.rss + 48 * 1024, `RSS ${before.rss} -> ${after.rss} KiB`);
  assert.equal(await srv.stop(), 0);
  assert.equal(coffre(['audit', 'verify', '--data', data]).code, 0);
});
