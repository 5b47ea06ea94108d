// browser.mjs - headless Chromium (Debian's) driven by playwright-core, for
// the page tests: a fresh profile per browser, traffic to loopback only.
import { mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

export const CHROMIUM = process.env.COFFRE_CHROMIUM ?? '/usr/bin/chromium';
export const SHOTS = new URL('../../build/screenshots/', import.meta.url).pathname;

let pw = null;
// playwright-core, or null (with the reason) when `npm ci` was not run.
export async function playwright() {
  if (pw) return pw;
  try {
    pw = await import('playwright-core');
  } catch (e) {
    return null;
  }
  return pw;
}

// A new browser with its own profile; closed when the test ends.
export async function browser(t, { locale = 'fr-FR' } = {}) {
  const { chromium } = await playwright();
  const dir = mkdtempSync(join(tmpdir(), 'coffre-chromium-'));
  const ctx = await chromium.launchPersistentContext(dir, {
    executablePath: CHROMIUM,
    headless: true,
    locale,
    viewport: { width: 1280, height: 800 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  t.after(async () => {
    await ctx.close().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  });
  return ctx;
}

// Desktop (1280x800) and phone (390x844) screenshots of the page, under
// build/screenshots/ (git-ignored).
export async function shots(page, name) {
  mkdirSync(SHOTS, { recursive: true });
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.screenshot({ path: join(SHOTS, `${name}-desktop.png`), fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: join(SHOTS, `${name}-phone.png`), fullPage: true });
  // nothing wider than the phone's screen
  const wide = await page.evaluate(() => document.documentElement.scrollWidth);
  await page.setViewportSize({ width: 1280, height: 800 });
  return wide;
}

// Every visible form control has a label, and every aria-describedby
// points at an element of the page.
export async function a11yProblems(page) {
  return page.evaluate(() => {
    const bad = [];
    for (const el of document.querySelectorAll('input:not([type=hidden]), select, textarea')) {
      if (!el.labels || el.labels.length === 0) bad.push(`no label: ${el.name}`);
      for (const id of (el.getAttribute('aria-describedby') || '').split(/\s+/).filter(Boolean))
        if (!document.getElementById(id)) bad.push(`describedby ${id} missing: ${el.name}`);
    }
    for (const b of document.querySelectorAll('button'))
      if (!b.textContent.trim() && !b.getAttribute('aria-label')) bad.push('button without text');
    if (!document.documentElement.lang) bad.push('no lang');
    if (!document.querySelector('h1')) bad.push('no h1');
    return bad;
  });
}

// TOTP code of a base32 secret (spaces allowed), from oathtool (an
// independent implementation); at = unix seconds.
export function totp(secret, at = Math.floor(Date.now() / 1000)) {
  const r = spawnSync('oathtool', ['--totp', '-b', '-N', `@${at}`, secret.replace(/\s+/g, '')],
    { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`oathtool: ${r.stderr}`);
  return r.stdout.trim();
}

export const available = async () => (await playwright()) !== null &&
  spawnSync(CHROMIUM, ['--version'], { encoding: 'utf8' }).status === 0;
