// pages.test.mjs - the HTML pages in a real browser (headless Chromium):
// a student activates, signs out and in; forms from another origin or
// with a forged token are refused; French by default, English on request.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { coffre, tempDir } from './helpers.mjs';
import { startServer, request, provisionStudent, closeAgents, FAST_HASH, STRONG } from './server.mjs';
import { browser, shots, a11yProblems } from './browser.mjs';

function sqlite(db, sql) {
  const r = spawnSync('sqlite3', [db, sql], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}

function setup(t) {
  const data = join(tempDir(t), 'data');
  assert.equal(coffre(['init', '--data', data, '--academie', '10']).code, 0);
  const d = coffre(['demo-data', '--data', data, '--establishments', '1', '--students-per', '4',
    '--guardians-per', '0']);
  assert.equal(d.code, 0, d.err);
  return data;
}

const ine = (i) => {
  const n = 999000000 + i;
  return String(n).padStart(10, '0') + 'ABCDEFGHJKLMNPRSTUVWXYZ'[n % 23];
};

// The pre-session cookie and the CSRF token of a form, as a browser would get them.
async function formOf(port, path, headers = {}) {
  const r = await request(port, 'GET', path, { headers });
  const pre = (r.headers['set-cookie'] || []).map((c) => c.split(';')[0]).find((c) => c.startsWith('coffre_pre='));
  const csrf = r.body.match(/name="csrf" value="([^"]+)"/)[1];
  return { pre, csrf, body: r.body };
}

const form = (o) => new URLSearchParams(o).toString();

test('a student activates with a code, signs out and signs in again, at desktop and phone sizes', async (t) => {
  t.after(closeAgents);
  const data = setup(t);
  const s = provisionStudent(data, ine(1));
  const srv = await startServer(t, data, FAST_HASH);
  const base = `http://localhost:${srv.port}`;
  const ctx = await browser(t);
  const page = await ctx.newPage();
  const cspErrors = [];
  page.on('console', (m) => { if (/Content Security Policy/i.test(m.text())) cspErrors.push(m.text()); });

  await page.goto(`${base}/`);
  assert.equal(new URL(page.url()).pathname, '/signin', 'the root sends a stranger to sign-in');
  assert.equal(await page.getAttribute('html', 'lang'), 'fr');
  assert.deepEqual(await a11yProblems(page), []);
  assert.ok((await shots(page, 'signin')) <= 390, 'sign-in fits a phone screen');

  // activation, step 1: a wrong code is refused in words that say what to do
  await page.click('text=Activer mon compte avec mon code');
  assert.equal(new URL(page.url()).pathname, '/activate');
  await page.fill('#login', s.login);
  await page.fill('#code', 'AAAA-BBBB-CCCC');
  await page.click('button[type=submit]');
  const err = page.locator('#form-err');
  assert.match(await err.textContent(), /ne convient pas.*demandez un nouveau code/s);
  assert.equal(await page.getAttribute('#code', 'aria-invalid'), 'true');
  assert.match(await page.getAttribute('#code', 'aria-describedby'), /form-err/);
  assert.equal(await page.inputValue('#login'), s.login, 'the login is kept');
  assert.equal(await page.inputValue('#code'), '', 'the code is not echoed');
  await page.waitForTimeout(1100);            // the login's back-off after a failure

  // step 1 with the right code, then the password with a live strength hint
  await page.fill('#code', s.code);
  await page.click('button[type=submit]');
  assert.equal(await page.textContent('h1'), 'Choisir un mot de passe');
  assert.deepEqual(await a11yProblems(page), []);
  await page.fill('#password', 'azerty12');
  await page.waitForFunction(() => document.getElementById('strength').dataset.level === 'weak');
  assert.match(await page.textContent('#strength'), /Trop facile/);
  await shots(page, 'activate-password');
  // the server decides: a weak password is refused, tied to its field
  await page.click('button[type=submit]');
  assert.match(await page.textContent('#form-err'), /trop facile à deviner/);
  assert.equal(await page.getAttribute('#password', 'aria-invalid'), 'true');
  await page.fill('#password', STRONG);
  await page.waitForFunction(() => document.getElementById('strength').dataset.level === 'good');
  await page.click('button[type=submit]');
  assert.equal(new URL(page.url()).pathname, '/account');
  assert.match(await page.textContent('main'), new RegExp(s.login.replace('.', '\\.')));
  assert.match(await page.textContent('main'), /Élève/);
  assert.match(await page.textContent('.sessions'), /cet appareil/);
  assert.match(await page.textContent('.sessions'), /Chrom(e|ium), Linux/, 'the device is named');
  assert.deepEqual(await a11yProblems(page), []);
  assert.ok((await shots(page, 'account')) <= 390, 'my account fits a phone screen');

  // sign out, then in: a wrong password first (one message for both fields)
  await page.click('text=Se déconnecter');
  assert.equal(new URL(page.url()).pathname, '/signin');
  assert.match(await page.textContent('[role=status]'), /déconnecté/);
  const gone = await page.goto(`${base}/account`);
  assert.equal(new URL(page.url()).pathname, '/signin', 'signed out: my account sends to sign-in');
  assert.equal(gone.status(), 200);
  await page.fill('#login', s.login);
  await page.fill('#password', 'not the password at all');
  await page.click('button[type=submit]');
  assert.match(await page.textContent('#form-err'), /L’identifiant ou le mot de passe ne convient pas/);
  assert.equal(await page.getAttribute('#password', 'aria-invalid'), 'true');
  assert.equal(await page.getAttribute('#login', 'aria-invalid'), 'true');
  assert.equal(await page.inputValue('#password'), '', 'the password is never sent back');
  await shots(page, 'signin-error');
  await page.waitForTimeout(1100);
  await page.fill('#password', STRONG);
  // keyboard only: Enter submits from the password field
  await page.focus('#password');
  await page.keyboard.press('Enter');
  await page.waitForURL(`${base}/account`);
  assert.match(await page.textContent('main'), /Appareils connectés/);
  assert.deepEqual(cspErrors, [], 'nothing broke the CSP');

  // a second browser signs in; the first revokes it from "my account"
  const other = await (await browser(t)).newPage();
  await other.goto(`${base}/signin`);
  await other.fill('#login', s.login);
  await other.fill('#password', STRONG);
  await other.click('button[type=submit]');
  await other.waitForURL(`${base}/account`);
  await page.reload();
  const revoke = page.locator('.sessions form button');
  assert.equal(await revoke.count(), 1, 'one other device, with its revoke button');
  await revoke.click();
  assert.equal(new URL(page.url()).pathname, '/account');
  assert.equal(await page.locator('.sessions form button').count(), 0);
  await other.reload();
  assert.equal(new URL(other.url()).pathname, '/signin', 'the revoked device is signed out');

  // a new password, from my account: the current one is checked, the new one judged
  await page.click('text=Changer de mot de passe');
  assert.equal(new URL(page.url()).pathname, '/account/password');
  assert.deepEqual(await a11yProblems(page), []);
  await page.fill('#current', 'not the password at all');
  await page.fill('#password', `${STRONG} encore`);
  await page.click('button[type=submit]');
  assert.match(await page.textContent('#form-err'), /mot de passe ne convient pas/);
  assert.equal(await page.getAttribute('#current', 'aria-invalid'), 'true');
  await page.waitForTimeout(1100);
  await page.fill('#current', STRONG);
  await page.fill('#password', 'azerty12');
  await page.click('button[type=submit]');
  assert.match(await page.textContent('#form-err'), /trop facile à deviner/);
  assert.equal(await page.getAttribute('#password', 'aria-invalid'), 'true');
  await page.fill('#current', STRONG);
  await page.fill('#password', `${STRONG} encore`);
  await page.click('button[type=submit]');
  await page.waitForURL(`${base}/account`);

  // the trail has the pages and the actions, and no secret
  assert.equal(await srv.stop(), 0, srv.log);
  const dump = sqlite(join(data, 'audit.db'), 'SELECT action, outcome FROM entries');
  for (const want of ['page.signin|ok', 'page.activate|ok', 'account.activate|failed',
    'account.activate.check|ok', 'account.activate|denied', 'account.activate|ok', 'page.account|ok',
    'session.logout|ok', 'page.account|denied', 'login|failed', 'login|ok', 'session.revoke|ok',
    'page.password|ok', 'account.password|failed', 'account.password|ok'])
    assert.ok(dump.includes(want), `audited: ${want}`);
  const all = sqlite(join(data, 'audit.db'), 'SELECT * FROM entries');
  assert.ok(!all.includes(STRONG) && !all.includes(s.code) && !all.includes(s.login));
});

test('CSRF: a form from another origin, or with a forged, foreign or missing token, is refused and audited; our own page works', async (t) => {
  t.after(closeAgents);
  const data = setup(t);
  const s = provisionStudent(data, ine(2));
  const srv = await startServer(t, data, FAST_HASH);
  const port = srv.port;
  const base = `http://localhost:${port}`;
  const act = await request(port, 'POST', '/api/v1/activate', { body: { login: s.login, code: s.code, password: STRONG } });
  assert.equal(act.status, 200);

  // another site on another port of the same host (same-site, so SameSite
  // cookies go along: only the origin check and the token stop it)
  const evil = http.createServer((req, res) => {
    res.setHeader('Content-Type', 'text/html');
    const target = req.url.startsWith('/out') ? '/signout' : req.url.startsWith('/api') ? '/api/v1/logout' : '/signin';
    const fields = req.url.startsWith('/out') ? '<input name="csrf" value="1.forged">'
      : `<input name="login" value="${s.login}"><input name="password" value="${STRONG}">`;
    res.end(`<!doctype html><form method="post" action="${base}${target}">${fields}</form>` +
      '<script>document.forms[0].submit()</script>');
  });
  await new Promise((r) => evil.listen(0, '127.0.0.1', r));
  t.after(() => evil.close());
  const evilBase = `http://localhost:${evil.address().port}`;

  const ctx = await browser(t);
  const page = await ctx.newPage();
  await page.goto(`${base}/signin`);
  await page.fill('#login', s.login);
  await page.fill('#password', STRONG);
  await page.click('button[type=submit]');
  await page.waitForURL(`${base}/account`);

  // the JSON API with the cookie, from the other origin: refused too
  const r0 = page.waitForResponse((r) => r.url() === `${base}/api/v1/logout`);
  await page.goto(`${evilBase}/api`);
  assert.equal((await r0).status(), 403);
  await page.goto(`${base}/account`);
  assert.equal(new URL(page.url()).pathname, '/account', 'still signed in');

  // the other site's sign-out form: refused with a clear message, still signed in
  const r1 = page.waitForResponse((r) => r.url() === `${base}/signout`);
  await page.goto(`${evilBase}/out`);
  assert.equal((await r1).status(), 403);
  await page.waitForURL(`${base}/signout`);
  assert.match(await page.textContent('#form-err'), /refusé.*rien n’a été modifié/s);
  await page.goto(`${base}/account`);
  assert.equal(new URL(page.url()).pathname, '/account', 'still signed in');
  // login CSRF: the other site signs the browser into an account: refused
  const r2 = page.waitForResponse((r) => r.url() === `${base}/signin` && r.request().method() === 'POST');
  await page.goto(`${evilBase}/in`);
  assert.equal((await r2).status(), 403);

  // without a browser: each forgery alone is enough to be refused
  const f = await formOf(port, '/signin');
  const g = await formOf(port, '/signin');            // another browser's token
  const creds = { login: s.login, password: STRONG };
  const post = (body, headers) => request(port, 'POST', '/signin', { raw: true, body: form(body),
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', ...headers } });
  const tries = {
    missing: await post(creds, { Cookie: f.pre }),
    forged: await post({ ...creds, csrf: `${Math.floor(Date.now() / 1000)}.AAAAAAAAAAAAAAAAAAAAAA` }, { Cookie: f.pre }),
    foreign: await post({ ...creds, csrf: g.csrf }, { Cookie: f.pre }),
    expired: await post({ ...creds, csrf: `1.${f.csrf.split('.')[1]}` }, { Cookie: f.pre }),
    noCookie: await post({ ...creds, csrf: f.csrf }, {}),
    otherOrigin: await post({ ...creds, csrf: f.csrf }, { Cookie: f.pre, Origin: 'http://localhost:1' }),
    nullOrigin: await post({ ...creds, csrf: f.csrf }, { Cookie: f.pre, Origin: 'null' }),
    crossSite: await post({ ...creds, csrf: f.csrf }, { Cookie: f.pre, 'Sec-Fetch-Site': 'cross-site' }),
    sameSite: await post({ ...creds, csrf: f.csrf }, { Cookie: f.pre, 'Sec-Fetch-Site': 'same-site' }),
  };
  for (const [name, r] of Object.entries(tries)) {
    assert.equal(r.status, 403, `${name}: refused`);
    assert.match(r.headers['content-type'], /text\/html/);
    assert.match(r.body, /Ce formulaire a été refusé/, `${name}: says what to do`);
    assert.equal(r.headers['set-cookie']?.some((c) => c.startsWith('coffre_session=')) ?? false, false,
      `${name}: no session made`);
  }
  // the same form, as our page sends it: signed in
  const ok = await post({ ...creds, csrf: f.csrf }, { Cookie: f.pre, Origin: `http://127.0.0.1:${port}`,
    Host: `127.0.0.1:${port}`, 'Sec-Fetch-Site': 'same-origin' });
  assert.equal(ok.status, 303);
  assert.equal(ok.headers.location, '/account');
  assert.ok(ok.headers['set-cookie'].some((c) => c.startsWith('coffre_session=')));
  // a token of a signed-out session does not sign out the next one
  const ses = ok.headers['set-cookie'].find((c) => c.startsWith('coffre_session=')).split(';')[0];
  const acct = await request(port, 'GET', '/account', { cookie: `${ses}; ${f.pre}` });
  const outTok = acct.body.match(/action="\/signout">\s*<input type="hidden" name="csrf" value="([^"]+)"/)[1];
  const out = await request(port, 'POST', '/signout', { raw: true, body: form({ csrf: outTok }),
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, cookie: `${ses}; ${f.pre}` });
  assert.equal(out.status, 303);
  assert.equal(out.headers.location, '/signin?bye=1');
  const again = await post({ ...creds, csrf: f.csrf }, { Cookie: f.pre });
  const ses2 = again.headers['set-cookie'].find((c) => c.startsWith('coffre_session=')).split(';')[0];
  const replay = await request(port, 'POST', '/signout', { raw: true, body: form({ csrf: outTok }),
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, cookie: `${ses2}; ${f.pre}` });
  assert.equal(replay.status, 403, 'a replayed token of the previous session is refused');
  assert.equal((await request(port, 'GET', '/api/v1/session', { cookie: ses2 })).status, 200, 'still signed in');

  assert.equal(await srv.stop(), 0, srv.log);
  const n = sqlite(join(data, 'audit.db'), "SELECT count(*) FROM entries WHERE action = 'page.csrf' AND outcome = 'denied'");
  assert.equal(Number(n), Object.keys(tries).length + 3, 'every refusal audited');
  assert.match(sqlite(join(data, 'audit.db'), "SELECT DISTINCT fields FROM entries WHERE action = 'page.csrf'"), /form:signout/);
  assert.equal(sqlite(join(data, 'audit.db'),
    "SELECT outcome || ' ' || fields FROM entries WHERE action = 'session.logout' AND fields != ''"), 'denied reason:origin');
});

test('French by default, English with Accept-Language or the switch; every message in both catalogues', async (t) => {
  t.after(closeAgents);
  const data = setup(t);
  const srv = await startServer(t, data, FAST_HASH);
  const port = srv.port;
  const get = (path, headers = {}) => request(port, 'GET', path, { headers });
  const fr = await get('/signin');
  assert.match(fr.body, /<html lang="fr">/);
  assert.match(fr.body, /Se connecter/);
  assert.equal(fr.headers['content-language'], 'fr');
  for (const al of ['en', 'en-GB,en;q=0.9', 'de-DE, en;q=0.5, fr;q=0.4']) {
    const en = await get('/signin', { 'Accept-Language': al });
    assert.match(en.body, /<html lang="en">/, al);
    assert.match(en.body, /Sign in/);
  }
  assert.match((await get('/signin', { 'Accept-Language': 'en;q=0.5, fr' })).body, /<html lang="fr">/);
  assert.match((await get('/activate', { 'Accept-Language': 'es, it' })).body, /<html lang="fr">/);
  // the switch: a cookie, then back to the page
  const sw = await get('/lang/en?next=/activate');
  assert.equal(sw.status, 303);
  assert.equal(sw.headers.location, '/activate');
  const cookie = sw.headers['set-cookie'][0].split(';')[0];
  assert.match((await request(port, 'GET', '/activate', { cookie, headers: { 'Accept-Language': 'fr' } })).body,
    /Activate my account/);
  // only our own pages as the next one: no open redirect
  assert.equal((await get('/lang/fr?next=https://evil.invalid/')).headers.location, '/signin');
  assert.equal((await get('/lang/fr?next=//evil.invalid')).headers.location, '/signin');
  assert.equal((await get('/lang/xx')).status, 404);
  // a form refused in English says so in English
  const f = await formOf(port, '/signin', { 'Accept-Language': 'en' });
  const r = await request(port, 'POST', '/signin', { raw: true, body: form({ login: 'x', password: 'y' }),
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', 'Accept-Language': 'en', Cookie: f.pre } });
  assert.equal(r.status, 403);
  assert.match(r.body, /This form was refused/);
  // static files: the one CSS and the one JS, cached a little, no inline script anywhere
  const css = await get('/static/app.css');
  assert.equal(css.status, 200);
  assert.match(css.headers['content-type'], /text\/css/);
  assert.match((await get('/static/app.js')).headers['content-type'], /javascript/);
  assert.equal((await get('/static/nothing.js')).status, 404);
  assert.equal((await get('/static/../keyring')).status, 404);
  for (const p of ['/signin', '/activate']) {
    const b = (await get(p)).body;
    assert.doesNotMatch(b, /<script>|<script [^>]*>[^<]|onclick=|style=/, `${p}: no inline script or style`);
  }
  assert.equal(await srv.stop(), 0, srv.log);
});
