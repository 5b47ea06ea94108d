// server.mjs - start a real coffre server for a test: temp data dir, random
// port on 127.0.0.1, stopped with SIGTERM at the end.  Client requests can
// come from any 127.0.0.0/8 address (all loopback) to play many clients.
import { spawn } from 'node:child_process';
import { chmodSync, chownSync, lstatSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { tmpdir } from 'node:os';
import http from 'node:http';
import { once } from 'node:events';
import { coffre, BIN } from './helpers.mjs';

// Cheap Argon2id for functional tests; the flood test uses the defaults.
export const FAST_HASH = ['--hash-t', '1', '--hash-m-kib', '1024'];

// Tests of other features run with no role required to have a second factor
// (their accounts have none; an account that enrolls one must still pass
// it); the suites read as the production behaviour (mfa*, signin, attacks,
// replays, flood) pass MFA_DEFAULT, the production default (totp.mjs
// enrolls their staff accounts).
export const MFA_DEFAULT = ['--mfa-required-roles', 'teacher,staff,academie_admin,dpo,service'];

// coffre serve refuses to run as root without --user (docs/hardening.md).
// A test run as root (CI containers) serves as 'nobody': the data dir is
// given to it before each start (CLI commands run as root in between may
// have made files), and the temp dirs above it made traversable.
export const SERVE_USER = { name: 'nobody', uid: 65534, gid: 65534 };

export function giveTo(path, { uid, gid } = SERVE_USER) {
  chownSync(path, uid, gid);
  if (lstatSync(path).isDirectory())
    for (const e of readdirSync(path)) giveTo(join(path, e), { uid, gid });
}

export function asServeUser(data, extra) {
  if (process.getuid?.() !== 0 || extra.includes('--user')) return extra;
  giveTo(data);
  for (let d = dirname(resolve(data)); d.startsWith(tmpdir()) && d !== tmpdir(); d = dirname(d))
    chmodSync(d, statSync(d).mode | 0o111);
  return [...extra, '--user', SERVE_USER.name];
}

// COFFRE_SECCOMP=log|off|kill: the seccomp mode of every test server.
export async function startServer(t, data, extra = []) {
  const mfa = extra.includes('--mfa-required-roles') ? [] : ['--mfa-required-roles', 'none'];
  extra = asServeUser(data, [...mfa, ...extra]);
  if (process.env.COFFRE_SECCOMP && !extra.includes('--seccomp')) extra = [...extra, '--seccomp', process.env.COFFRE_SECCOMP];
  const child = spawn(BIN, ['serve', '--data', data, '--listen', '127.0.0.1:0', ...extra],
    { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  let port = 0;
  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start: ${log}`)), 15000);
    child.stderr.on('data', (d) => {
      log += d.toString();
      const m = log.match(/"msg":"serving"[^\n]*"port":"(\d+)"/);
      if (m && !port) {
        port = Number(m[1]);
        clearTimeout(timer);
        resolve();
      }
    });
    child.on('exit', (code) => { clearTimeout(timer); if (!port) reject(new Error(`server exited ${code}: ${log}`)); });
  });
  await ready;
  const srv = {
    child, port, get log() { return log; },
    async stop() {
      if (child.exitCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      const [code] = await once(child, 'exit');
      return code;
    },
    kill9() { child.kill('SIGKILL'); return once(child, 'exit'); },
  };
  // a call the seccomp allow-list lacks: SIGSYS (kill) or a log line (log)
  const sandboxed = () => {
    const bad = log.split('\n').filter((l) => l.includes('seccomp: forbidden'));
    if (bad.length || child.signalCode === 'SIGSYS')
      throw new Error(`coffre serve made a forbidden system call: ${child.signalCode ?? ''} ${bad.join(' ')}`);
  };
  t.after(() => { if (child.exitCode === null) child.kill('SIGKILL'); sandboxed(); });
  return srv;
}

const agents = new Map();
function agentFor(localAddress) {
  const key = localAddress ?? 'default';
  if (!agents.has(key)) agents.set(key, new http.Agent({ keepAlive: true, maxSockets: 64, localAddress }));
  return agents.get(key);
}

// One request; resolves { status, headers, body (string), json }.
export function request(port, method, path, { body, headers = {}, from, cookie, token, raw } = {}) {
  return new Promise((resolve, reject) => {
    const h = { ...headers };
    let payload = null;
    if (body !== undefined) {
      payload = raw ? body : JSON.stringify(body);
      if (!h['Content-Type']) h['Content-Type'] = 'application/json';
      h['Content-Length'] = Buffer.byteLength(payload);
    }
    if (cookie) h.Cookie = cookie;
    if (token) h.Authorization = `Bearer ${token}`;
    const req = http.request({ host: '127.0.0.1', port, method, path, headers: h, agent: agentFor(from),
                               timeout: 30000 }, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { data += c; });
      res.on('end', () => {
        let json = null;
        try { json = JSON.parse(data); } catch { /* not JSON */ }
        resolve({ status: res.statusCode, headers: res.headers, body: data, json });
      });
    });
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    if (payload !== null) req.write(payload);
    req.end();
  });
}

export function closeAgents() {
  for (const a of agents.values()) a.destroy();
  agents.clear();
}

export function cookieOf(res) {
  const c = res.headers['set-cookie'];
  return c ? c[0].split(';')[0] : null;
}

// Provisions an account for the first student of a demo establishment and
// returns { login, code }.
export function provisionStudent(data, ine) {
  const s = coffre(['student', 'find', '--data', data, '--ine', ine]);
  if (s.code !== 0) throw new Error(s.err);
  const id = JSON.parse(s.out).id;
  const p = coffre(['account', 'provision', '--data', data, '--role', 'student', '--person', id]);
  if (p.code !== 0) throw new Error(p.err);
  return { login: p.out.match(/^login (\S+)/m)[1], code: p.out.match(/activation code (\S+)/)[1],
           account: p.out.match(/^id (\S+)/m)[1], person: id };
}

export function provisionAdmin(data, login = 'admin.lyon') {
  const p = coffre(['account', 'provision', '--data', data, '--role', 'academie_admin',
    '--academie', '10', '--login', login]);
  if (p.code !== 0) throw new Error(p.err);
  return { login, code: p.out.match(/activation code (\S+)/)[1] };
}

export const STRONG = 'girafe tambour nuage citron';
