// school.mjs - the two-establishment school of records.test.mjs, shared by
// the write, export and alert tests: 15 pupils (5 in 6A, 5 in 6B of
// Collège Un; 5 in 5A of Collège Deux), a teacher of 6A, a secretary in
// each establishment, a guardian of pupil 1, and their accounts.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { coffre, tempDir } from './helpers.mjs';
import { request, cookieOf, provisionAdmin, STRONG } from './server.mjs';

export const ine = (i) => {
  const n = 999000000 + i;
  return String(n).padStart(10, '0') + 'ABCDEFGHJKLMNPRSTUVWXYZ'[n % 23];
};
export const ok = (r) => { assert.equal(r.code, 0, r.err); return r.out.trim(); };

export function sqlite(db, sql) {
  const r = spawnSync('sqlite3', [db, sql], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}

export function school(t, { more = [] } = {}) {
  const data = join(tempDir(t), 'data');
  ok(coffre(['init', '--data', data, '--academie', '10']));
  const E1 = ok(coffre(['establishment', 'add', '--data', data, '--uai', '0999001W', '--name', 'Collège Un', '--academie', '10']));
  const E2 = ok(coffre(['establishment', 'add', '--data', data, '--uai', '0999002X', '--name', 'Collège Deux', '--academie', '10']));
  const cls = {};
  for (const [uai, name] of [['0999001W', '6A'], ['0999001W', '6B'], ['0999002X', '5A']])
    cls[name] = ok(coffre(['class', 'add', '--data', data, '--establishment', uai, '--name', name]));
  const st = [];
  for (let i = 1; i <= 15; i++) {
    const [uai, c] = i <= 5 ? ['0999001W', '6A'] : i <= 10 ? ['0999001W', '6B'] : ['0999002X', '5A'];
    st[i] = ok(coffre(['student', 'add', '--data', data, '--establishment', uai, '--class', c, '--ine', ine(i),
      '--family-name', `ELEVE${String.fromCharCode(64 + i)}`, '--given-names', 'Camille', '--birth-date', '2013-02-0' + (1 + (i % 9)),
      '--address', `${i} rue des Écoles, 99001 Testville`, '--email', `eleve${i}@e.invalid`]));
  }
  const staff = {};
  for (const [who, uai, fn] of [['prof', '0999001W', 'professeur'], ['secr', '0999001W', 'secrétariat'], ['secr2', '0999002X', 'secrétariat']])
    staff[who] = ok(coffre(['staff', 'add', '--data', data, '--establishment', uai, '--family-name', who.toUpperCase(),
      '--given-names', 'Dominique', '--email', `${who}@ac.invalid`, '--function', fn]));
  ok(coffre(['class', 'assign', '--data', data, '--establishment', '0999001W', '--class', '6A', '--staff-email', 'prof@ac.invalid']));
  const guardian = ok(coffre(['guardian', 'add', '--data', data, '--student', st[1], '--relationship', 'mère',
    '--family-name', 'ELEVEA', '--given-names', 'Karine', '--phone', '0601020304']));
  const accounts = {};
  for (const [who, role, person] of [['student', 'student', st[1]], ['guardian', 'guardian', guardian],
                                     ['teacher', 'teacher', staff.prof], ['office', 'staff', staff.secr],
                                     ['office2', 'staff', staff.secr2]]) {
    const out = ok(coffre(['account', 'provision', '--data', data, '--role', role, '--person', person]));
    accounts[who] = { login: out.match(/^login (\S+)/m)[1], code: out.match(/activation code (\S+)/)[1] };
  }
  accounts.admin = provisionAdmin(data);
  for (const [who, role, login] of more) {
    const out = ok(coffre(['account', 'provision', '--data', data, '--role', role, '--academie', '10', '--login', login]));
    accounts[who] = { login, code: out.match(/activation code (\S+)/)[1] };
  }
  return { data, E1, E2, cls, st, staff, guardian, accounts };
}

// Activates every account (each from its own address); returns cookies.
export async function signIn(port, accounts, base = 30) {
  const cookies = {};
  let i = 1;
  for (const [who, a] of Object.entries(accounts)) {
    const r = await request(port, 'POST', '/api/v1/activate',
      { body: { login: a.login, code: a.code, password: STRONG }, from: `127.0.${base}.${i++}` });
    assert.equal(r.status, 200, `${who}: ${r.body}`);
    cookies[who] = cookieOf(r);
  }
  return cookies;
}
