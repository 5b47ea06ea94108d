// cli.test.mjs - the coffre command line end to end: exit codes, messages,
// keyring handling, compartments, rotation, and bad input changing nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { statSync, readFileSync, writeFileSync, existsSync, copyFileSync, chmodSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { coffre, sh, tempDir, fixture, addStudent, BIN } from './helpers.mjs';

const SUBCOMMANDS = [
  ['init'], ['academies'], ['keys', 'export'], ['keys', 'rotate'], ['keys', 'list'],
  ['establishment', 'add'], ['establishment', 'list'], ['class', 'add'], ['student', 'add'],
  ['student', 'get'], ['student', 'find'], ['guardian', 'add'], ['guardian', 'get'],
  ['staff', 'add'], ['staff', 'get'], ['staff', 'find'], ['demo-data'],
];

function sqlite(db, sql) {
  const r = spawnSync('sqlite3', [db, sql], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}

function rowCount(data) {
  return Number(sqlite(join(data, 'coffre.db'),
    'SELECT (SELECT count(*) FROM establishments)+(SELECT count(*) FROM classes)+(SELECT count(*) FROM students)' +
    '+(SELECT count(*) FROM guardians)+(SELECT count(*) FROM guardian_links)+(SELECT count(*) FROM staff)'));
}

test('usage: no command is exit 2, --help on every subcommand is exit 0', () => {
  assert.equal(coffre([]).code, 2);
  assert.equal(coffre(['frobnicate']).code, 2);
  for (const sub of SUBCOMMANDS) {
    const r = coffre([...sub, '--help']);
    assert.equal(r.code, 0, sub.join(' '));
    assert.match(r.out, new RegExp(`usage: coffre ${sub.join(' ')}`));
  }
  const r = coffre(['student', 'get', '--data', '/x', '--bogus', '1', 'id']);
  assert.equal(r.code, 2);
  assert.match(r.err, /unknown option '--bogus'/);
});

test('init: creates a 0700 dir, a 0600 keyring, prints the seed once, refuses to run twice', (t) => {
  const data = join(tempDir(t), 'data');
  const r = coffre(['init', '--data', data, '--academie', '10']);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /initial audit seed \(epoch 0\): [0-9a-f]{64}/);
  assert.equal(statSync(data).mode & 0o777, 0o700);
  assert.equal(statSync(join(data, 'keyring')).mode & 0o777, 0o600);
  const before = readFileSync(join(data, 'keyring'));
  const again = coffre(['init', '--data', data, '--academie', '10']);
  assert.equal(again.code, 1);
  assert.match(again.err, /already exists/);
  assert.deepEqual(readFileSync(join(data, 'keyring')), before);
  // The seed is not in any output of later commands.
  const seed = r.out.match(/[0-9a-f]{64}/)[0];
  assert.ok(!coffre(['keys', 'list', '--data', data]).out.includes(seed));
});

test('init: bad académie or none is a usage error and creates nothing', (t) => {
  const root = tempDir(t);
  for (const [args, msg] of [
    [['--academie', '05'], /académie/], [['--academie', 'ab'], /académie/], [[], /--academie/],
    [['--academie', '10', '--academie', '10'], /given twice/],
  ]) {
    const data = join(root, 'd' + Math.random().toString(16).slice(2));
    const r = coffre(['init', '--data', data, ...args]);
    assert.ok(r.code === 2 || r.code === 1, `exit ${r.code}`);
    assert.match(r.err, msg);
    assert.ok(!existsSync(join(data, 'keyring')));
    assert.ok(!existsSync(join(data, 'coffre.db')));
  }
});

test('records: add, get, find by INE and e-mail, with normalisation', (t) => {
  const f = fixture(t);
  const s = addStudent(f.data, '0999001W', '0999000001s', '  MARTIN ', ['--email', 'Zoe.Martin@Example.invalid']);
  assert.equal(s.code, 0, s.err);
  const id = s.out.trim();
  assert.match(id, /^[0-9a-f]{32}$/);
  const g = coffre(['student', 'get', '--data', f.data, id]);
  assert.equal(g.code, 0, g.err);
  const rec = JSON.parse(g.out);
  assert.equal(rec.ine, '0999000001S');
  assert.equal(rec.family_name, 'MARTIN');
  assert.equal(rec.email, 'zoe.martin@example.invalid');
  assert.equal(rec.academie, '10');
  // Zoé typed with a combining accent
  assert.equal(rec.given_names, 'Zo\u00e9');
  const found = coffre(['student', 'find', '--data', f.data, '--ine', '0999000001S']);
  assert.equal(JSON.parse(found.out).id, id);
  const none = coffre(['student', 'find', '--data', f.data, '--ine', '0999000002T']);
  assert.equal(none.code, 1);
  assert.match(none.err, /no student with this ine/);

  const st = coffre(['staff', 'add', '--data', f.data, '--establishment', '0999001W', '--family-name', 'DURAND',
    '--given-names', 'Zoe\u0301', '--email', 'Zoe\u0301.Durand@AC-Demo.invalid', '--function', 'professeure']);
  assert.equal(st.code, 0, st.err);
  const sf = coffre(['staff', 'find', '--data', f.data, '--email', 'zo\u00e9.durand@ac-demo.invalid']);
  assert.equal(sf.code, 0, sf.err);
  assert.equal(JSON.parse(sf.out).id, st.out.trim());
  assert.equal(JSON.parse(sf.out).given_names, 'Zo\u00e9');

  const gd = coffre(['guardian', 'add', '--data', f.data, '--student', id, '--relationship', 'mère',
    '--family-name', 'MARTIN', '--given-names', 'Karine', '--phone', '06 12 34 56 78']);
  assert.equal(gd.code, 0, gd.err);
  assert.equal(JSON.parse(coffre(['guardian', 'get', '--data', f.data, gd.out.trim()]).out).phone, '0612345678');
});

test('bad input: one-line error naming the field, exit 2, nothing written', (t) => {
  const f = fixture(t);
  const before = rowCount(f.data);
  const cases = [
    [['--ine', '0999000001A'], /ine: check letter/],
    [['--ine', '0999000001S', '--birth-date', '31/02/2011'], /birth_date/],
    [['--ine', '0999000001S', '--family-name', 'A'.repeat(257)], /family_name: longer than 256/],
    [['--ine', '0999000001S', '--email', 'nope'], /email: not an e-mail/],
  ];
  for (const [extra, msg] of cases) {
    // a valid student, with the case's options replacing the defaults
    const m = new Map([['--establishment', '0999001W'], ['--family-name', 'X'], ['--given-names', 'Y'],
      ['--birth-date', '2011-05-02']]);
    for (let i = 0; i < extra.length; i += 2) m.set(extra[i], extra[i + 1]);
    const r = coffre(['student', 'add', '--data', f.data, ...[...m].flat()]);
    assert.equal(r.code, 2, r.err);
    assert.match(r.err, msg);
    assert.equal(r.err.trim().split('\n').length, 1);
  }
  // invalid UTF-8 in a name
  const bad = sh(`"$BIN" student add --data '${f.data}' --establishment 0999001W --ine 0999000001S ` +
    `--family-name "$(printf 'MAR\\377TIN')" --given-names Y --birth-date 2011-05-02`);
  assert.equal(bad.code, 2);
  assert.match(bad.err, /family_name: not valid UTF-8/);
  assert.doesNotMatch(bad.err, /MAR/);
  // unknown establishment, bad UAI
  assert.equal(addStudent(f.data, '0999003Y', '0999000001S').code, 1);
  const u = addStudent(f.data, '0999003A', '0999000001S');
  assert.equal(u.code, 2);
  assert.match(u.err, /uai/);
  assert.equal(rowCount(f.data), before);
  // a duplicate INE is refused and names the INE, not its value
  assert.equal(addStudent(f.data, '0999001W', '0999000001S').code, 0);
  const dup = addStudent(f.data, '0999001W', '0999000001S');
  assert.equal(dup.code, 1);
  assert.match(dup.err, /INE is already present/);
  assert.doesNotMatch(dup.err, /0999000001S/);
  assert.equal(rowCount(f.data), before + 1);
});

test('data dir and keyring problems get a plain one-line error', (t) => {
  const f = fixture(t);
  let r = coffre(['student', 'find', '--data', join(f.root, 'missing'), '--ine', '0999000001S']);
  assert.equal(r.code, 1);
  assert.match(r.err, /data directory '.*missing' not found/);
  r = coffre(['student', 'find', '--ine', '0999000001S'], { env: { ...process.env, COFFRE_DATA: '' } });
  assert.equal(r.code, 2);

  const kr = readFileSync(join(f.data, 'keyring'));
  const partial = join(f.root, 'partial');
  writeFileSync(partial, kr.subarray(0, kr.length - 30), { mode: 0o600 });
  r = coffre(['keys', 'list', '--data', f.data, '--keyring', partial]);
  assert.equal(r.code, 2);
  assert.match(r.err, /keyring '.*partial': incomplete/);

  const edited = join(f.root, 'edited');
  const e = Buffer.from(kr);
  e[60] = e[60] === 0x61 ? 0x62 : 0x61;
  writeFileSync(edited, e, { mode: 0o600 });
  r = coffre(['keys', 'list', '--data', f.data, '--keyring', edited]);
  assert.notEqual(r.code, 0);
  assert.match(r.err, /keyring '.*edited'/);

  const open = join(f.root, 'open');
  copyFileSync(join(f.data, 'keyring'), open);
  chmodSync(open, 0o644);
  r = coffre(['keys', 'list', '--data', f.data, '--keyring', open]);
  assert.equal(r.code, 1);
  assert.match(r.err, /readable by others/);

  // another init's keyring does not open this store
  const other = join(f.root, 'other');
  assert.equal(coffre(['init', '--data', other, '--academie', '10']).code, 0);
  r = coffre(['keys', 'list', '--data', f.data, '--keyring', join(other, 'keyring')]);
  assert.equal(r.code, 1);
  assert.match(r.err, /belongs to another store/);

  // a store from a newer coffre
  sqlite(join(f.data, 'coffre.db'), 'PRAGMA user_version = 42');
  r = coffre(['keys', 'list', '--data', f.data]);
  assert.equal(r.code, 1);
  assert.match(r.err, /schema version 42 is newer/);
});

test('keys export: a regional keyring opens its own compartment only', (t) => {
  const f = fixture(t);
  const a = addStudent(f.data, '0999001W', '0999000001S', 'LYONNAIS').out.trim();
  const b = addStudent(f.data, '0999002X', '0999000002T', 'MARSEILLAIS').out.trim();
  const out = join(f.root, 'keyring-10');
  const ex = coffre(['keys', 'export', '--data', f.data, '--compartment', '10', '--out', out]);
  assert.equal(ex.code, 0, ex.err);
  assert.equal(statSync(out).mode & 0o777, 0o600);
  assert.doesNotMatch(readFileSync(out, 'utf8'), /^kek 02 /m);
  // A regional node: its own directory with a copy of the store and the
  // exported keyring (and its own audit trail).
  const region = join(f.root, 'region');
  mkdirSync(region, { mode: 0o700 });
  copyFileSync(join(f.data, 'coffre.db'), join(region, 'coffre.db'));
  copyFileSync(out, join(region, 'keyring'));
  chmodSync(join(region, 'keyring'), 0o600);
  let r = coffre(['student', 'get', '--data', region, a]);
  assert.equal(r.code, 0, r.err);
  assert.equal(JSON.parse(r.out).family_name, 'LYONNAIS');
  r = coffre(['student', 'get', '--data', region, b]);
  assert.equal(r.code, 1);
  assert.match(r.err, /holds no key for compartment 02 \(Aix-Marseille\)/);
  assert.doesNotMatch(r.err, /MARSEILLAIS/);
  // with the full keyring the same read works
  r = coffre(['student', 'get', '--data', f.data, b]);
  assert.equal(JSON.parse(r.out).family_name, 'MARSEILLAIS');
  // never overwrites, and refuses a compartment it does not hold
  assert.equal(coffre(['keys', 'export', '--data', f.data, '--compartment', '10', '--out', out]).code, 1);
  r = coffre(['keys', 'export', '--data', region, '--compartment', '02', '--out', join(f.root, 'x')]);
  assert.equal(r.code, 1);
  assert.match(r.err, /no compartment '02'/);
});

test('keys rotate: rows re-sealed to the new version, readable throughout', (t) => {
  const f = fixture(t);
  const demo = coffre(['demo-data', '--data', f.data, '--establishments', '2', '--students-per', '30',
    '--first-establishment', '10']);
  assert.equal(demo.code, 0, demo.err);
  const id = addStudent(f.data, '0999001W', '0999000001S', 'AVANT').out.trim();
  // add a version without re-sealing: old rows stay on v1 and still open
  let r = coffre(['keys', 'rotate', '--data', f.data, '--compartment', '10', '--reseal', '0']);
  assert.equal(r.code, 0, r.err);
  let list = coffre(['keys', 'list', '--data', f.data]).out;
  assert.match(list, /compartment 10 \(Lyon\): current data key v2/);
  const v1 = Number(list.match(/v1: (\d+) rows/)[1]);
  assert.ok(v1 > 100);
  assert.equal(JSON.parse(coffre(['student', 'get', '--data', f.data, id]).out).family_name, 'AVANT');
  const id2 = addStudent(f.data, '0999001W', '0999000002T', 'APRES').out.trim();
  // rotate again, re-sealing in batches of 17
  r = coffre(['keys', 'rotate', '--data', f.data, '--compartment', '10', '--batch', '17']);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /re-sealed \d+ rows to v3/);
  list = coffre(['keys', 'list', '--data', f.data]).out;
  const section = list.split('compartment 02')[0];
  assert.match(section, /v1: 0 rows/);
  assert.match(section, /v2: 0 rows/);
  assert.ok(Number(section.match(/v3: (\d+) rows/)[1]) >= v1 + 1);
  assert.equal(JSON.parse(coffre(['student', 'get', '--data', f.data, id]).out).family_name, 'AVANT');
  assert.equal(JSON.parse(coffre(['student', 'get', '--data', f.data, id2]).out).family_name, 'APRES');
  // compartment 02 is untouched
  assert.match(list.split('compartment 02')[1], /current data key v1/);
  r = coffre(['keys', 'rotate', '--data', f.data, '--compartment', '10', '--batch', '0']);
  assert.equal(r.code, 2);
});

test('demo-data: deterministic, bounded, and all-or-nothing', (t) => {
  const f = fixture(t);
  for (const bad of [['--establishments', '0'], ['--students-per', '100001'], ['--seed', '-1'],
                     ['--guardians-per', '3'], ['--establishments', 'x']]) {
    const r = coffre(['demo-data', '--data', f.data, ...bad]);
    assert.equal(r.code, 2, bad.join(' '));
  }
  const before = rowCount(f.data);
  const r = coffre(['demo-data', '--data', f.data, '--establishments', '2', '--students-per', '25',
    '--first-establishment', '0', '--seed', '7']);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /2 establishments, 2 classes, 50 students/);
  const after = rowCount(f.data);
  assert.ok(after > before + 100);
  // establishment numbers 1..3 collide with 0..1 on the UAI: nothing of the second run stays
  const again = coffre(['demo-data', '--data', f.data, '--establishments', '3', '--students-per', '25',
    '--first-establishment', '1', '--seed', '7']);
  assert.equal(again.code, 1);
  assert.match(again.err, /UAI is already present/);
  assert.equal(rowCount(f.data), after);
  // same seed, same people
  const one = JSON.parse(coffre(['student', 'find', '--data', f.data, '--ine', '0999000001S']).out);
  const g = fixture(t);
  coffre(['demo-data', '--data', g.data, '--establishments', '2', '--students-per', '25',
    '--first-establishment', '0', '--seed', '7']);
  const two = JSON.parse(coffre(['student', 'find', '--data', g.data, '--ine', '0999000001S']).out);
  assert.equal(one.family_name, two.family_name);
  assert.equal(one.birth_date, two.birth_date);
  assert.notEqual(one.id, two.id);        // ids are random, never derived
});

test('a second import colliding with the first changes nothing and keeps every index', (t) => {
  const root = tempDir(t);
  const data = join(root, 'data');
  assert.equal(coffre(['init', '--data', data, '--academie', '10']).code, 0);
  // The first import goes into an empty store (indexes built at commit);
  // the second, into a non-empty one, is checked row by row.
  const r1 = coffre(['demo-data', '--data', data, '--establishments', '1', '--students-per', '20']);
  assert.equal(r1.code, 0, r1.err);
  const n = rowCount(data);
  const idx = sqlite(join(data, 'coffre.db'), "SELECT count(*) FROM sqlite_master WHERE type='index'");
  const r2 = coffre(['demo-data', '--data', data, '--establishments', '1', '--students-per', '20', '--first-establishment', '0']);
  assert.equal(r2.code, 1);
  assert.equal(rowCount(data), n);
  // every index survived both imports
  assert.equal(sqlite(join(data, 'coffre.db'), "SELECT count(*) FROM sqlite_master WHERE type='index'"), idx);
  assert.equal(sqlite(join(data, 'coffre.db'), 'PRAGMA integrity_check'), 'ok');
});
