// scope.test.mjs - `coffre scope` against the ground truth of the attacks:
// the guard issue's replays (B bulk export, C directory scrape, E stolen
// teacher account) and the Educonnect case (a provisioned account hijacked
// with its activation code) run against a real server while the test
// records every person id it was served; then the server stops and scope
// must name exactly those people, no more and no fewer.  Also the
// notification draft, the people file (a minor's guardians, DPO only) and
// bad inputs.  Bounded in count; loopback only.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { coffre, tempDir } from './helpers.mjs';
import { startServer, request, cookieOf, closeAgents, FAST_HASH, STRONG } from './server.mjs';

const ine = (i) => {
  const n = 999000000 + i;
  return String(n).padStart(10, '0') + 'ABCDEFGHJKLMNPRSTUVWXYZ'[n % 23];
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// The TOTP of time step `step` (30 s), by oathtool.
function totp(secret, step) {
  const r = spawnSync('oathtool', ['--totp', '-b', secret.replace(/ /g, ''), '-N', `@${step * 30}`], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}
const stepNow = () => Math.floor(Date.now() / 1000 / 30);
const statMode = (p) => statSync(p).mode & 0o777;

function sqlite(db, sql) {
  const r = spawnSync('sqlite3', [db, sql], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}

// The replays' académie: 50 establishments x 500 pupils, one guardian each.
function academy(t) {
  const data = join(tempDir(t), 'data');
  assert.equal(coffre(['init', '--data', data, '--academie', '10']).code, 0);
  const d = coffre(['demo-data', '--data', data, '--establishments', '50', '--students-per', '500', '--guardians-per', '1']);
  assert.equal(d.code, 0, d.err);
  const db = join(data, 'coffre.db');
  const first = '(SELECT id FROM establishments ORDER BY rid LIMIT 1)';
  const teachers = sqlite(db, `SELECT DISTINCT lower(hex(t.p0)) FROM teachings t JOIN staff s ON s.id = t.p0 WHERE s.p0 = ${first} ORDER BY t.rid`).split('\n');
  const office = sqlite(db, `SELECT lower(hex(id)) FROM staff WHERE p0 = ${first} AND id NOT IN (SELECT p0 FROM teachings) ORDER BY rid`).split('\n');
  const add = (role, person, extra = []) => {
    const p = coffre(['account', 'provision', '--data', data, '--role', role, ...(person ? ['--person', person] : []), ...extra]);
    assert.equal(p.code, 0, p.err);
    return { role, login: p.out.match(/^login (\S+)/m)[1], code: p.out.match(/activation code (\S+)/)[1],
             id: p.out.match(/^id (\S+)/m)[1], person };
  };
  return {
    data, db,
    officeB: add('staff', office[0]), officeC: add('staff', office[1] ?? office[0]),
    teacherE: add('teacher', teachers[0]), teacherL: add('teacher', teachers[1]), teacherH: add('teacher', teachers[2]),
    teacherP: add('teacher', teachers[3]),
    dpo: add('dpo', null, ['--academie', '10', '--login', 'dpo.lyon']),
    classesOf: (person) => sqlite(db, `SELECT lower(hex(p1)) FROM teachings WHERE p0 = x'${person}'`).split('\n'),
  };
}

async function activate(port, a, from) {
  const r = await request(port, 'POST', '/api/v1/activate', { body: { login: a.login, code: a.code, password: STRONG }, from });
  assert.equal(r.status, 200, r.body);
  return cookieOf(r);
}

function scopeJson(data, args) {
  const r = coffre(['scope', '--data', data, '--format', 'json', ...args], { maxBuffer: 256 << 20 });
  assert.equal(r.code, 0, r.err);
  return JSON.parse(r.out);
}
const servedSet = (s) => new Set(s.people_list.filter((p) => p.served_in_clear).map((p) => p.id));
const sorted = (set) => [...set].sort();

test('scope names exactly the people each attacker was served; notification, people file, bad input', async (t) => {
  const a = academy(t);
  const srv = await startServer(t, a.data, FAST_HASH);
  const port = srv.port;
  const truth = { B: new Set(), C: new Set(), E: new Set(), H: new Set() };
  const served = (set, r) => {
    if (r.status !== 200) return;
    if (r.json.items) for (const p of r.json.items) set.add(p.id);
    else set.add(r.json.id);
  };

  const cookieDpo = await activate(port, a.dpo, '127.0.39.1');
  // a legitimate teacher, activated before the incident window, reads on
  const cookieL = await activate(port, a.teacherL, '127.0.40.1');
  await sleep(1100);
  const windowStart = new Date().toISOString();

  const attack = async (set, cookie, from, next, max) => {
    let tries = 0;
    for (; tries < max; tries++) {
      const r = await request(port, 'GET', next(tries), { cookie, from });
      served(set, r);
      if ((r.status === 403 && /account-locked|address-blocked/.test(r.json?.type ?? '')) || r.status === 401) break;
    }
    return tries;
  };
  // B: bulk export by a school-staff account, INE after INE
  assert.ok(await attack(truth.B, await activate(port, a.officeB, '127.0.41.1'), '127.0.41.1',
    (i) => `/api/v1/students?ine=${ine(i)}`, 25000) < 25000, 'B was stopped');
  // C: directory scrape: guessed e-mails, walked ids
  assert.ok(await attack(truth.C, await activate(port, a.officeC, '127.0.42.1'), '127.0.42.1',
    (i) => (i % 2 ? `/api/v1/staff?email=prenom.nom.${i}@ac-demo.invalid` : `/api/v1/staff/${(i * 7919).toString(16).padStart(32, '0')}`), 20000) < 20000, 'C was stopped');
  // E: a stolen teacher account: a normal morning, then across the académie
  const cookieE = await activate(port, a.teacherE, '127.0.43.1');
  for (const cls of a.classesOf(a.teacherE.person))
    served(truth.E, await request(port, 'GET', `/api/v1/classes/${cls}/students`, { cookie: cookieE, from: '127.0.43.1' }));
  assert.ok(await attack(truth.E, cookieE, '127.0.43.1', (i) => `/api/v1/students?ine=${ine(i)}`, 25000) < 25000, 'E was stopped');
  // Educonnect: a provisioned teacher account hijacked with its code, then used
  const cookieH = await activate(port, a.teacherH, '127.0.44.1');
  for (const cls of a.classesOf(a.teacherH.person))
    served(truth.H, await request(port, 'GET', `/api/v1/classes/${cls}/students`, { cookie: cookieH, from: '127.0.44.1' }));
  // meanwhile the legitimate teacher reads its classes too
  for (const cls of a.classesOf(a.teacherL.person))
    assert.equal((await request(port, 'GET', `/api/v1/classes/${cls}/students`, { cookie: cookieL, from: '127.0.40.1' })).status, 200);
  // the DPO enrolls TOTP (the step of its confirmation is spent)
  const enroll = await request(port, 'POST', '/api/v1/mfa/totp/enroll', { body: {}, cookie: cookieDpo, from: '127.0.39.1' });
  assert.equal(enroll.status, 200, enroll.body);
  const dpoStep = stepNow();
  const confirm = await request(port, 'POST', '/api/v1/mfa/totp/confirm', { body: { code: totp(enroll.json.secret, dpoStep) }, cookie: cookieDpo, from: '127.0.39.1' });
  assert.equal(confirm.status, 200, confirm.body);
  closeAgents();
  assert.equal(await srv.stop(), 0);
  assert.ok(truth.B.size > 0 && truth.E.size > 0 && truth.H.size > 0);

  // a measure taken after the incident, recorded in the trail
  assert.equal(coffre(['incident', 'freeze-unactivated', '--data', a.data]).code, 0);

  // B, C, E: by account, exactly the people served
  for (const [k, acct] of [['B', a.officeB], ['C', a.officeC], ['E', a.teacherE]]) {
    const s = scopeJson(a.data, ['--actor', acct.login]);
    assert.deepEqual(sorted(servedSet(s)), sorted(truth[k]), `scope of ${k}`);
    assert.deepEqual(s.actors.map((x) => x.actor), [`acct:${acct.id}`]);
    assert.equal(s.actors[0].state, 'locked');
    console.log(`# scope ${k}: ${s.entries} entries, ${s.people} people named, ${s.served_in_clear} served in clear, ${s.refused} reads refused`);
  }
  // the same by address block, by account id and by session
  const byAddr = scopeJson(a.data, ['--address', '127.0.41.0/24']);
  assert.deepEqual(sorted(servedSet(byAddr)), sorted(truth.B));
  assert.deepEqual(sorted(servedSet(scopeJson(a.data, ['--actor', a.teacherE.id]))), sorted(truth.E));
  // E's refused reads name people never decrypted for anyone
  const e = scopeJson(a.data, ['--actor', a.teacherE.login]);
  assert.ok(e.refused > 0 && e.never_decrypted > 0);
  assert.equal(e.people, e.served_in_clear + e.never_decrypted);
  for (const p of e.people_list.filter((x) => !x.served_in_clear)) assert.equal(p.fields, '');

  // --rule: the accesses that led to each lockout under the rule
  const rules = sqlite(a.db, "SELECT DISTINCT locked_reason FROM accounts WHERE state = 'locked'").split('\n');
  for (const reason of rules) {
    const rule = reason.replace(/^guard:/, '');
    const locked = sqlite(a.db, `SELECT lower(hex(id)) FROM accounts WHERE locked_reason = '${reason}'`).split('\n').map((x) => `acct:${x}`);
    const s = scopeJson(a.data, ['--rule', rule]);
    assert.deepEqual(s.actors.map((x) => x.actor).sort(), locked.sort(), `--rule ${rule}`);
  }

  // Educonnect: accounts provisioned (not yet activated) at some time in
  // the window: the hijacked one and the attackers' (activated in it), not
  // the teacher activated before it
  const prov = scopeJson(a.data, ['--account-state', 'provisioned', '--from', windowStart]);
  const actors = prov.actors.map((x) => x.actor);
  assert.ok(actors.includes(`acct:${a.teacherH.id}`), 'the hijacked account is listed');
  assert.ok(!actors.includes(`acct:${a.teacherL.id}`), 'an account activated before the window is not');
  const h = scopeJson(a.data, ['--account-state', 'provisioned', '--from', windowStart, '--address', '127.0.44.1']);
  assert.deepEqual(h.actors.map((x) => x.actor), [`acct:${a.teacherH.id}`]);
  assert.deepEqual(sorted(servedSet(h)), sorted(truth.H));

  // the notification draft: every Art. 33(3) heading, figures of the summary
  const dir = tempDir(t);
  const md = join(dir, 'notification.md');
  const withNote = coffre(['scope', '--data', a.data, '--format', 'json', '--actor', a.teacherE.login,
    '--notification', md, '--dpo-contact', 'DPO, Académie de Lyon, dpo@ac-demo.invalid'], { maxBuffer: 256 << 20 });
  assert.equal(withNote.code, 0, withNote.err);
  const sum = JSON.parse(withNote.out);
  const note = readFileSync(md, 'utf8');
  for (const h2 of ['## (a) Nature of the breach', 'Categories and approximate number of data subjects',
    'Categories and approximate number of personal data records', '## (b) Data protection officer',
    '## (c) Likely consequences', '## (d) Measures taken or proposed'])
    assert.ok(note.includes(h2), h2);
  assert.ok(note.includes(`| students (mostly minors) | ${sum.by_category.student.people} | ${sum.by_category.student.served_in_clear} |`));
  assert.ok(note.includes(`| **total** | **${sum.people}** | **${sum.served_in_clear}** | **${sum.never_decrypted}** |`));
  assert.ok(note.includes(`${sum.entries} accesses recorded`));
  assert.ok(note.includes(`${sum.served} records served in clear`));
  assert.ok(note.includes('dpo@ac-demo.invalid'));
  assert.ok(note.includes(`the guard locked account acct:${a.teacherE.id} automatically`), 'the lockout is a measure');
  assert.ok(note.includes('`incident.freeze-unactivated`'), 'the incident command is a measure');

  // the people file: a DPO with a fresh second factor only; a minor's
  // notice goes to the guardians
  const csv = join(dir, 'people.csv');
  const people = (...extra) => coffre(['scope', '--data', a.data, '--actor', a.teacherE.login, '--people', csv, ...extra], { maxBuffer: 256 << 20 });
  const code = totp(enroll.json.secret, Math.max(dpoStep + 1, stepNow()));
  assert.equal(people().code, 2, 'no --dpo');
  assert.equal(people('--dpo', a.dpo.login).code, 2, 'no --totp');
  const notDpo = people('--dpo', a.teacherL.login, '--totp', code);
  assert.equal(notDpo.code, 1, notDpo.err);
  assert.match(notDpo.err, /not an active DPO account/);
  const spent = people('--dpo', a.dpo.login, '--totp', totp(enroll.json.secret, dpoStep));
  assert.equal(spent.code, 1, 'the code of the confirmation was spent');
  assert.match(spent.err, /--totp: wrong, expired or already used code/);
  assert.ok(!existsSync(csv));
  const before = Number(sqlite(join(a.data, 'audit.db'), "SELECT count(*) FROM entries WHERE action = 'scope.people'"));
  const ok = people('--dpo', a.dpo.login, '--totp', code);
  assert.equal(ok.code, 0, ok.err);
  const replay = coffre(['scope', '--data', a.data, '--actor', a.teacherE.login, '--people', join(dir, 'again.csv'), '--dpo', a.dpo.login, '--totp', code]);
  assert.equal(replay.code, 1, 'a code works once');
  assert.ok(!existsSync(join(dir, 'again.csv')));
  const rows = readFileSync(csv, 'utf8').trim().split('\n').slice(1).map((l) => JSON.parse(`[${l}]`));
  const opened = sqlite(join(a.data, 'audit.db'), `SELECT subject FROM entries WHERE action = 'scope.people' AND actor = 'acct:${a.dpo.id}'`).split('\n');
  assert.ok(opened.length > before, 'every opening is audited under the DPO');
  const minors = new Set(), adults = new Set();
  for (const id of truth.E) {
    const st = JSON.parse(coffre(['student', 'get', '--data', a.data, id]).out);
    const age = (Date.now() - Date.parse(st.birth_date)) / (365.25 * 86400e3);
    (age < 18 ? minors : adults).add(id);
    if (age < 18) for (const r of rows.filter((x) => x[0] === id)) {
      assert.equal(r[3], 'guardian');
      assert.notEqual(r[4], id);
      assert.ok(!r.includes(st.email) && !r.includes(st.given_names), 'the minor is not listed');
      const g = JSON.parse(coffre(['guardian', 'get', '--data', a.data, r[4]]).out);
      assert.equal(r[7], g.email ?? '');
      const links = sqlite(a.db, `SELECT lower(hex(p1)) FROM guardian_links WHERE p0 = x'${r[4]}'`);
      assert.ok(links.split('\n').includes(id), 'a guardian on record of this pupil');
    }
  }
  assert.ok(minors.size > 0, 'demo pupils include minors');
  assert.deepEqual(sorted(new Set(rows.map((r) => r[0]))), sorted(truth.E), 'one notice (or more) per person served');
  for (const r of rows) if (adults.has(r[0])) assert.equal(r[3], 'self');

  // bad input: a clear message, exit 2 or 1, no file half-written
  const empty = join(dir, 'empty.md');
  for (const [args, code] of [
    [[], 2],
    [['--from', '2030-01-02', '--to', '2030-01-01'], 2],
    [['--from', 'yesterday'], 2],
    [['--address', '300.1.2.3/8'], 2],
    [['--account-state', 'sleeping'], 2],
    [['--actor', 'nobody.here'], 1],
    [['--from', '2031-01-01', '--notification', empty], 1],
  ]) {
    const r = coffre(['scope', '--data', a.data, ...args]);
    assert.equal(r.code, code, `${args.join(' ')}: ${r.err}`);
    assert.match(r.err, /coffre scope: /);
  }
  assert.ok(!existsSync(empty));
  assert.deepEqual(readdirSync(dir).filter((f) => f.includes('.tmp-')), []);

  // the index is derived: rebuilt, the same answer; verify unaffected
  assert.equal(coffre(['audit', 'reindex', '--data', a.data]).code, 0);
  assert.deepEqual(sorted(servedSet(scopeJson(a.data, ['--actor', a.officeB.login]))), sorted(truth.B));
  assert.equal(coffre(['audit', 'verify', '--data', a.data]).code, 0);
});

test('audit archive: old entries leave the live trail for a file verify still checks; bad input changes nothing', (t) => {
  const root = tempDir(t);
  const data = join(root, 'data');
  assert.equal(coffre(['init', '--data', data, '--academie', '10']).code, 0);
  assert.equal(coffre(['demo-data', '--data', data, '--establishments', '1', '--students-per', '20']).code, 0);
  const ids = sqlite(join(data, 'coffre.db'), 'SELECT lower(hex(id)) FROM students ORDER BY rid LIMIT 8').split('\n');
  for (const id of ids.slice(0, 4)) assert.equal(coffre(['student', 'get', '--data', data, id]).code, 0);
  const live = join(data, 'audit.db');
  const before = Number(sqlite(live, 'SELECT count(*) FROM entries'));
  const arc = join(root, 'old.arc');

  // bad input: no date, a date with nothing before it, an existing file
  assert.equal(coffre(['audit', 'archive', '--data', data, '--out', arc]).code, 2);
  assert.equal(coffre(['audit', 'archive', '--data', data, '--before', 'soon', '--out', arc]).code, 2);
  const none = coffre(['audit', 'archive', '--data', data, '--before', '2001-01-01', '--out', arc]);
  assert.equal(none.code, 1);
  assert.match(none.err, /nothing to archive/);
  assert.ok(!existsSync(arc));

  const r = coffre(['audit', 'archive', '--data', data, '--before', '2100-01-01', '--out', arc]);
  assert.equal(r.code, 0, r.err);
  const digest = r.out.match(/digest ([0-9a-f]{64})/)[1];
  assert.equal(statMode(arc), 0o400);
  assert.ok(Number(sqlite(live, 'SELECT count(*) FROM entries')) < before, 'the live trail shrank');
  assert.equal(sqlite(live, `SELECT count(*) FROM entries WHERE action = 'audit.archive' AND fields = 'blake2b:${digest}'`), '1');
  const again = coffre(['audit', 'archive', '--data', data, '--before', '2100-01-01', '--out', arc]);
  assert.equal(again.code, 2, 'never overwritten');

  const v = coffre(['audit', 'verify', '--data', data]);
  assert.equal(v.code, 0, v.out);
  assert.match(v.out, /archived: not checked here/);
  const va = coffre(['audit', 'verify', '--data', data, '--archive', arc]);
  assert.equal(va.code, 0, va.out);
  assert.match(va.out, /archive '.*' intact: entries 1 to \d+/);
  // the live part still answers scope
  for (const id of ids.slice(4)) assert.equal(coffre(['student', 'get', '--data', data, id]).code, 0);
  const s = JSON.parse(coffre(['scope', '--data', data, '--actor', 'cli', '--format', 'json']).out);
  for (const id of ids.slice(4)) assert.ok(s.people_list.some((p) => p.id === id));

  // a copy of the archive with one entry changed is caught
  const bad = join(root, 'bad.arc');
  spawnSync('cp', [arc, bad]);
  spawnSync('chmod', ['u+w', bad]);
  sqlite(bad, "UPDATE entries SET subject = '' WHERE seq = 3");
  const vb = coffre(['audit', 'verify', '--data', data, '--archive', bad]);
  assert.equal(vb.code, 1);
  assert.match(vb.out, /TAMPERED: audit archive.*entry 3: hash does not match/);
  // and a live trail whose archived entries were deleted without an archive base is caught
  sqlite(live, "DELETE FROM meta WHERE k = 'base_seq'");
  const vl = coffre(['audit', 'verify', '--data', data]);
  assert.equal(vl.code, 1);
  assert.match(vl.out, /TAMPERED/);
});
