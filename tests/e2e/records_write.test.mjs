// records_write.test.mjs - school staff write their establishment's
// records through the API (pupils, guardians, guardian links, classes):
// validated, one transaction each, guard-counted, audited with ids and
// field names only.  Bad input is a clear 4xx and changes nothing; a write
// outside one's establishment is a 403 that the guard counts like a read.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { coffre } from './helpers.mjs';
import { startServer, request, closeAgents, FAST_HASH } from './server.mjs';
import { school, signIn, sqlite, ine } from './school.mjs';

const counts = (data) => sqlite(join(data, 'coffre.db'),
  "SELECT (SELECT count(*) FROM students)||','||(SELECT count(*) FROM guardians)||','||" +
  "(SELECT count(*) FROM guardian_links)||','||(SELECT count(*) FROM classes)||','||" +
  "(SELECT group_concat(hex(fields)||hex(coalesce(p1,'')), '') FROM students)");

test('staff create and change pupils, guardians, links and classes of their establishment', async (t) => {
  const s = school(t);
  const srv = await startServer(t, s.data, FAST_HASH);
  const c = await signIn(srv.port, s.accounts);
  const from = '127.0.40.1';
  const call = (method, path, body) => request(srv.port, method, path, { cookie: c.office, from, body });

  // a pupil, in 6A
  let r = await call('POST', '/api/v1/students', { ine: ine(30), family_name: 'NOUVEAU', given_names: 'Léa',
    birth_date: '12/03/2013', class_id: s.cls['6A'] });
  assert.equal(r.status, 201, r.body);
  const pupil = r.json.id;
  assert.match(pupil, /^[0-9a-f]{32}$/);
  assert.deepEqual(r.json.fields.sort(), ['birth_date', 'family_name', 'given_names', 'ine']);
  r = await call('GET', `/api/v1/students/${pupil}`);
  assert.equal(r.status, 200, r.body);
  assert.equal(r.json.family_name, 'NOUVEAU');
  assert.equal(r.json.birth_date, '2013-03-12');
  assert.equal(r.json.class_id, s.cls['6A']);
  // ids are random: two new pupils share no prefix pattern
  r = await call('POST', '/api/v1/students', { ine: ine(31), family_name: 'AUTRE', given_names: 'Léo', birth_date: '2013-01-01' });
  assert.equal(r.status, 201, r.body);
  assert.notEqual(r.json.id.slice(0, 8), pupil.slice(0, 8));
  const pupil2 = r.json.id;

  // change fields and the class; remove an optional field
  r = await call('PATCH', `/api/v1/students/${pupil}`, { email: 'Lea.Nouveau@E.invalid', address: '3 rue Neuve, 99001 Testville', class_id: s.cls['6B'] });
  assert.equal(r.status, 200, r.body);
  assert.deepEqual(r.json.changed.sort(), ['address', 'class_id', 'email']);
  r = await call('GET', `/api/v1/students/${pupil}`);
  assert.equal(r.json.class_id, s.cls['6B']);
  assert.equal(r.json.email, 'lea.nouveau@e.invalid');
  assert.equal(r.json.ine, ine(30));
  // found by its new e-mail's blind index? by INE, still
  r = await call('GET', `/api/v1/students?ine=${ine(30)}`);
  assert.equal(r.json.id, pupil);
  r = await call('PATCH', `/api/v1/students/${pupil}`, { address: null, class_id: null });
  assert.equal(r.status, 200, r.body);
  r = await call('GET', `/api/v1/students/${pupil}`);
  assert.equal(r.json.address, undefined);
  assert.equal(r.json.class_id, undefined);

  // a guardian comes with its link to a pupil
  r = await call('POST', '/api/v1/guardians', { family_name: 'NOUVEAU', given_names: 'Sam', phone: '06 11 22 33 44',
    student_id: pupil, relationship: 'père' });
  assert.equal(r.status, 201, r.body);
  const guardian = r.json.id, link = r.json.link_id;
  assert.match(link, /^[0-9a-f]{32}$/);
  r = await call('PATCH', `/api/v1/guardians/${guardian}`, { email: 'sam@e.invalid' });
  assert.equal(r.status, 200, r.body);
  r = await call('GET', `/api/v1/guardians/${guardian}`);
  assert.equal(r.json.email, 'sam@e.invalid');
  assert.equal(r.json.phone, '0611223344');

  // links: the same guardian for the second pupil, then removed
  r = await call('POST', '/api/v1/guardian-links', { guardian_id: guardian, student_id: pupil2, relationship: 'père' });
  assert.equal(r.status, 201, r.body);
  const link2 = r.json.id;
  r = await call('POST', '/api/v1/guardian-links', { guardian_id: guardian, student_id: pupil2, relationship: 'père' });
  assert.equal(r.status, 409, r.body);
  r = await call('GET', `/api/v1/children/${guardian}`);
  assert.equal(r.json.items.length, 2);
  r = await call('DELETE', `/api/v1/guardian-links/${link2}`);
  assert.equal(r.status, 200, r.body);
  r = await call('DELETE', `/api/v1/guardian-links/${link2}`);
  assert.equal(r.status, 404, r.body);
  r = await call('GET', `/api/v1/children/${guardian}`);
  assert.equal(r.json.items.length, 1);

  // classes: create, rename, assign a pupil
  r = await call('POST', '/api/v1/classes', { name: '6C' });
  assert.equal(r.status, 201, r.body);
  const cls = r.json.id;
  r = await call('PATCH', `/api/v1/classes/${cls}`, { name: '6D' });
  assert.equal(r.status, 200, r.body);
  r = await call('PATCH', `/api/v1/students/${pupil2}`, { class_id: cls });
  assert.equal(r.status, 200, r.body);
  r = await call('GET', `/api/v1/classes/${cls}/students`);
  assert.equal(r.status, 200, r.body);
  assert.equal(r.json.parent.name, '6D');
  assert.deepEqual(r.json.items.map((i) => i.id), [pupil2]);

  // a guardian changes their own phone, not their name, and nobody else's
  r = await request(srv.port, 'PATCH', `/api/v1/guardians/${s.guardian}`, { cookie: c.guardian, from: '127.0.40.2', body: { phone: '0699887766' } });
  assert.equal(r.status, 200, r.body);
  r = await request(srv.port, 'PATCH', `/api/v1/guardians/${s.guardian}`, { cookie: c.guardian, from: '127.0.40.2', body: { family_name: 'AUTRE' } });
  assert.equal(r.status, 403, r.body);
  r = await request(srv.port, 'GET', `/api/v1/guardians/${s.guardian}`, { cookie: c.guardian, from: '127.0.40.2' });
  assert.equal(r.json.phone, '0699887766');
  assert.equal(r.json.family_name, 'ELEVEA');
  // a teacher writes nothing, not even in her own class
  r = await request(srv.port, 'PATCH', `/api/v1/students/${s.st[1]}`, { cookie: c.teacher, from: '127.0.40.3', body: { email: 'x@e.invalid' } });
  assert.equal(r.status, 403, r.body);
  r = await request(srv.port, 'POST', '/api/v1/classes', { cookie: c.teacher, from: '127.0.40.3', body: { name: '6Z' } });
  assert.equal(r.status, 403, r.body);

  closeAgents();
  assert.equal(await srv.stop(), 0);
  // audited: ids and field names, never a value
  const db = join(s.data, 'audit.db');
  const trail = sqlite(db, "SELECT action, subject, fields, outcome FROM entries WHERE action LIKE '%.create' OR action LIKE '%.update' OR action LIKE '%.delete'");
  assert.match(trail, new RegExp(`student.create\\|[^\\n]*${pupil}[^\\n]*\\|[^\\n]*ine[^\\n]*\\|ok`));
  assert.match(trail, new RegExp(`student.update\\|${pupil},${s.cls['6B']}\\|address,email,class_id\\|ok`));
  assert.match(trail, new RegExp(`guardian.create\\|${pupil},${guardian},${link}\\|family_name,given_names,phone,relationship\\|ok`));
  assert.match(trail, new RegExp(`guardian_link.delete\\|${link2}\\|\\|ok`));
  assert.match(trail, /guardian.update\|[0-9a-f]{32}\|family_name\|denied/);
  assert.doesNotMatch(sqlite(db, 'SELECT * FROM entries'), /NOUVEAU|Léa|lea\.nouveau|rue Neuve|0611223344|0699887766|6D/);
  assert.equal(coffre(['audit', 'verify', '--data', s.data]).code, 0);
});

test('bad input is a clear 4xx and changes nothing', async (t) => {
  const s = school(t);
  const srv = await startServer(t, s.data, FAST_HASH);
  const c = await signIn(srv.port, s.accounts);
  const call = (method, path, body) => request(srv.port, method, path, { cookie: c.office, from: '127.0.41.1', body });
  const before = counts(s.data);
  const good = { ine: ine(40), family_name: 'BON', given_names: 'Élise', birth_date: '2013-01-01' };
  const wrongLetter = ine(40).slice(0, 10) + (ine(40).endsWith('A') ? 'B' : 'A');
  const cases = [
    ['POST', '/api/v1/students', { ...good, ine: wrongLetter }, 400, /ine/],
    ['POST', '/api/v1/students', { ...good, birth_date: '2013-02-30' }, 400, /birth_date/],
    ['POST', '/api/v1/students', { ...good, email: 'not an address' }, 400, /email/],
    ['POST', '/api/v1/students', { ...good, family_name: 'X'.repeat(2000) }, 400, /family_name/],
    ['POST', '/api/v1/students', { ...good, family_name: 'X'.repeat(300) }, 400, /family_name/],
    ['POST', '/api/v1/students', { ...good, family_name: 42 }, 400, /family_name/],
    ['POST', '/api/v1/students', { ...good, family_name: 'A\u0000B' }, 400, /JSON/],
    ['POST', '/api/v1/students', { ...good, nickname: 'Lili' }, 400, /no such field/],
    ['POST', '/api/v1/students', { ...good, ine: ine(1) }, 409, /INE/],
    ['POST', '/api/v1/students', { family_name: 'BON' }, 400, /required/],
    ['POST', '/api/v1/students', { ...good, class_id: 'f'.repeat(32) }, 404, /class/],
    ['POST', '/api/v1/students', { ...good, class_id: 'zz' }, 400, /class_id/],
    ['POST', '/api/v1/students', { ...good, class_id: s.cls['5A'] }, 400, /another establishment/],
    ['PATCH', `/api/v1/students/${s.st[2]}`, { ine: wrongLetter }, 400, /ine/],
    ['PATCH', `/api/v1/students/${s.st[2]}`, { family_name: null }, 400, /required/],
    ['PATCH', `/api/v1/students/${s.st[2]}`, {}, 400, /Nothing to change/],
    ['PATCH', `/api/v1/students/${s.st[2]}`, { ine: ine(3) }, 409, /already/],
    ['PATCH', `/api/v1/students/${s.st[2]}`, { class_id: s.cls['5A'] }, 400, /another establishment/],
    ['PATCH', `/api/v1/students/${s.st[2]}`, { class_id: 'e'.repeat(32) }, 404, /class/],
    ['PATCH', `/api/v1/students/${'a'.repeat(32)}`, { email: 'a@e.invalid' }, 404, /student/],
    ['PATCH', '/api/v1/students/nothex', { email: 'a@e.invalid' }, 404, /student/],
    ['PATCH', `/api/v1/classes/${s.cls['6A']}`, { name: '' }, 400, /name/],
    ['PATCH', `/api/v1/classes/${s.cls['6A']}`, { establishment_id: s.E2 }, 400, /no such field/],
    ['POST', '/api/v1/guardians', { family_name: 'SEUL', given_names: 'Sans' }, 400, /student_id and relationship/],
    ['POST', '/api/v1/guardians', { family_name: 'X', given_names: 'Y', phone: '12', student_id: s.st[2], relationship: 'mère' }, 400, /phone/],
    ['POST', '/api/v1/guardian-links', { guardian_id: s.guardian, student_id: s.st[1], relationship: 'mère' }, 409, /already/],
    ['POST', '/api/v1/guardian-links', { guardian_id: s.guardian, student_id: s.st[2] }, 400, /relationship/],
    ['DELETE', `/api/v1/guardian-links/${'b'.repeat(32)}`, undefined, 404, /guardian_link/],
  ];
  for (const [method, path, body, status, re] of cases) {
    const r = await call(method, path, body);
    assert.equal(r.status, status, `${method} ${path} ${JSON.stringify(body)?.slice(0, 80)}: ${r.body}`);
    assert.match(r.headers['content-type'], /problem\+json/);
    assert.match(r.json.detail, re, r.body);
    // the detail never repeats a value sent
    assert.doesNotMatch(r.json.detail, /Lili|BON|Élise|not an address|XXXX/);
  }
  // invalid UTF-8 and a body that is not JSON
  let r = await request(srv.port, 'POST', '/api/v1/students', { cookie: c.office, from: '127.0.41.1', raw: true,
    body: Buffer.concat([Buffer.from('{"ine":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}')]) });
  assert.equal(r.status, 400, r.body);
  r = await request(srv.port, 'POST', '/api/v1/students', { cookie: c.office, from: '127.0.41.1', raw: true, body: '{"ine":' });
  assert.equal(r.status, 400, r.body);
  closeAgents();
  assert.equal(await srv.stop(), 0);
  assert.equal(counts(s.data), before);
});

test('a write outside one\'s establishment is refused, audited, and counted by the guard', async (t) => {
  const s = school(t);
  // school staff may touch 8 distinct records an hour here
  const srv = await startServer(t, s.data, [...FAST_HASH, '--guard-budgets', 'staff=8/50']);
  const c = await signIn(srv.port, s.accounts);
  const before = counts(s.data);
  const call = (who, method, path, body, from = '127.0.42.1') => request(srv.port, method, path, { cookie: c[who], from, body });
  // Collège Deux's secretary may change her own pupil (attack and legit side by side)
  let r = await call('office2', 'PATCH', `/api/v1/students/${s.st[11]}`, { email: 'onze@e.invalid' }, '127.0.42.2');
  assert.equal(r.status, 200, r.body);
  const after = counts(s.data);
  // Collège Un's may not: a pupil of Collège Deux, a new pupil there, a guardian for one, a class there
  // (touches: st12; E2 and the new pupil; st13 and the new guardian; the new class; 5A = 7 records)
  const forbidden = (x) => { assert.equal(x.status, 403, x.body); assert.match(x.json.type, /forbidden$/); };
  forbidden(await call('office', 'PATCH', `/api/v1/students/${s.st[12]}`, { email: 'x@e.invalid' }));
  forbidden(await call('office', 'POST', '/api/v1/students', { establishment_id: s.E2, ine: ine(50), family_name: 'INTRUS', given_names: 'Ivo', birth_date: '2013-01-01' }));
  forbidden(await call('office', 'POST', '/api/v1/guardians', { family_name: 'INTRUS', given_names: 'Ivo', student_id: s.st[13], relationship: 'père' }));
  forbidden(await call('office', 'POST', '/api/v1/classes', { establishment_id: s.E2, name: '5Z' }));
  forbidden(await call('office', 'PATCH', `/api/v1/classes/${s.cls['5A']}`, { name: '5Z' }));
  assert.equal(counts(s.data), after);
  // each refusal counted: the 8th distinct record is still answered, the 9th locks the account
  forbidden(await call('office', 'PATCH', `/api/v1/students/${s.st[14]}`, { email: 'x@e.invalid' }));
  r = await call('office', 'PATCH', `/api/v1/students/${s.st[15]}`, { email: 'x@e.invalid' });
  assert.equal(r.status, 403, r.body);
  assert.match(r.json.type, /account-locked$/);
  // locked: even a legitimate write of its own establishment is refused now
  r = await call('office', 'PATCH', `/api/v1/students/${s.st[2]}`, { email: 'deux@e.invalid' }, '127.0.42.9');
  assert.equal(r.status, 401, r.body);
  closeAgents();
  assert.equal(await srv.stop(), 0);
  assert.equal(counts(s.data), after);
  assert.notEqual(after, before);
  const trail = sqlite(join(s.data, 'audit.db'), "SELECT action||':'||outcome FROM entries WHERE actor != 'cli' AND action NOT IN ('account.activate')");
  assert.match(trail, /student.update:denied/);
  assert.match(trail, /student.create:denied/);
  assert.match(trail, /guardian.create:denied/);
  assert.match(trail, /class.update:denied/);
  assert.match(trail, /student.update:locked/);
  assert.match(sqlite(join(s.data, 'coffre.db'), "SELECT locked_reason FROM accounts WHERE state = 'locked'"), /guard:budget-1h/);
});
