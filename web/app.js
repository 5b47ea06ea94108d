// coffre pages: the only script (the CSP forbids inline ones).  Without
// it every form still works; with it: a live password-strength hint, a
// show-password switch, and security keys (WebAuthn).
'use strict';

// ---- password strength: an estimate; the server decides (zxcvbn) ----------
const COMMON = ['password', 'motdepasse', 'azerty', 'qwerty', '123456', 'abcdef', 'soleil',
  'bonjour', 'admin', 'coffre', 'ecole', 'college', 'lycee'];

function strength(pw, login) {
  if (pw.length < 8) return 'short';
  let pool = 0;
  if (/[a-z]/.test(pw)) pool += 26;
  if (/[A-Z]/.test(pw)) pool += 26;
  if (/[0-9]/.test(pw)) pool += 10;
  if (/[^A-Za-z0-9]/.test(pw)) pool += 33;
  let bits = pw.length * Math.log2(Math.max(pool, 2)) * 0.6;
  const low = pw.toLowerCase();
  for (const w of COMMON) if (low.includes(w)) bits -= 20;
  if (login && login.length >= 3 && low.includes(login.toLowerCase().split('.')[0])) bits -= 20;
  if (/(.)\1\1/.test(pw)) bits -= 10;
  if (/^[a-z]+[0-9]+$/i.test(pw)) bits -= 10;
  return bits < 35 ? 'weak' : bits < 50 ? 'fair' : 'good';
}

function wireStrength(input) {
  const out = document.getElementById(input.dataset.strength);
  if (!out) return;
  let timer = null;
  input.addEventListener('input', () => {
    clearTimeout(timer);
    // a pause before speaking, so a screen reader is not flooded
    timer = setTimeout(() => {
      if (input.value === '') { out.textContent = ''; delete out.dataset.level; return; }
      const level = strength(input.value, input.dataset.login || '');
      out.dataset.level = level;
      out.textContent = out.dataset[level] || '';
    }, 300);
  });
}

function wireReveal(box) {
  const input = document.getElementById(box.dataset.reveal);
  if (!input) return;
  box.addEventListener('change', () => { input.type = box.checked ? 'text' : 'password'; });
}

// ---- security keys (WebAuthn) -------------------------------------------
const b64u = {
  toBuf(s) {
    const b = atob(s.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((s.length + 3) % 4));
    return Uint8Array.from(b, (c) => c.charCodeAt(0)).buffer;
  },
  of(buf) {
    let s = '';
    for (const x of new Uint8Array(buf)) s += String.fromCharCode(x);
    return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  },
};

async function api(path, body) {
  const r = await fetch(path, {
    method: 'POST', credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body || {}),
  });
  let j = null;
  try { j = await r.json(); } catch { /* not JSON */ }
  if (!r.ok) throw Object.assign(new Error('refused'), { problem: j });
  return j;
}

function say(form, key) {
  const out = form.querySelector('[data-webauthn-status]');
  if (!out) return;
  out.textContent = out.dataset[key] || '';
  out.dataset.state = key;
  if (key !== 'working') out.focus();
}

async function registerKey(form) {
  say(form, 'working');
  try {
    const o = await api('/api/v1/mfa/webauthn/register/begin');
    const pk = o.publicKey || o;
    pk.challenge = b64u.toBuf(pk.challenge);
    pk.user.id = b64u.toBuf(pk.user.id);
    if (pk.excludeCredentials) pk.excludeCredentials = pk.excludeCredentials.map((c) => ({ ...c, id: b64u.toBuf(c.id) }));
    const cred = await navigator.credentials.create({ publicKey: pk });
    const name = form.querySelector('[name=name]');
    const done = await api('/api/v1/mfa/webauthn/register/finish', {
      name: name && name.value ? name.value : 'key',
      id: cred.id,
      clientDataJSON: b64u.of(cred.response.clientDataJSON),
      attestationObject: b64u.of(cred.response.attestationObject),
    });
    const box = document.getElementById('key-codes');
    if (done && Array.isArray(done.recovery_codes) && box) {
      // the first factor: its recovery codes, shown once, here
      const list = box.querySelector('ol');
      for (const code of done.recovery_codes) {
        const li = document.createElement('li');
        li.textContent = code;
        list.appendChild(li);
      }
      form.hidden = true;
      box.hidden = false;
      box.querySelector('h2').focus();
      return;
    }
    window.location.assign(form.dataset.next || '/account');
  } catch (e) {
    say(form, 'failed');
  }
}

async function assertKey(form) {
  say(form, 'working');
  try {
    const o = await api('/api/v1/mfa/webauthn/assert/begin');
    const pk = o.publicKey || o;
    pk.challenge = b64u.toBuf(pk.challenge);
    if (pk.allowCredentials) pk.allowCredentials = pk.allowCredentials.map((c) => ({ ...c, id: b64u.toBuf(c.id) }));
    const a = await navigator.credentials.get({ publicKey: pk });
    const body = {
      id: a.id,
      clientDataJSON: b64u.of(a.response.clientDataJSON),
      authenticatorData: b64u.of(a.response.authenticatorData),
      signature: b64u.of(a.response.signature),
    };
    if (a.response.userHandle) body.userHandle = b64u.of(a.response.userHandle);
    await api('/api/v1/mfa/webauthn/assert/finish', body);
    window.location.assign(form.dataset.next || '/account');
  } catch (e) {
    say(form, 'failed');
  }
}

function wireWebauthn(form) {
  if (!window.PublicKeyCredential) { say(form, 'unsupported'); return; }
  const btn = form.querySelector('button');
  if (btn) btn.disabled = false;
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    (form.dataset.webauthn === 'register' ? registerKey : assertKey)(form);
  });
}

document.addEventListener('DOMContentLoaded', () => {
  document.querySelectorAll('input[data-strength]').forEach(wireStrength);
  document.querySelectorAll('input[data-reveal]').forEach(wireReveal);
  document.querySelectorAll('form[data-webauthn]').forEach(wireWebauthn);
});
