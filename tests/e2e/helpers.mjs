// helpers.mjs - run the coffre binary in a temporary directory.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const BIN = process.env.COFFRE_BIN ?? new URL('../../build/coffre', import.meta.url).pathname;

// Runs coffre with args; returns { code, out, err }.
export function coffre(args, opts = {}) {
  const r = spawnSync(BIN, args, { encoding: 'utf8', timeout: 60_000, ...opts });
  if (r.error) throw r.error;
  return { code: r.status, out: r.stdout, err: r.stderr };
}

// Runs a shell command line (for arguments that are not valid UTF-8).
export function sh(line) {
  const r = spawnSync('sh', ['-c', line], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, BIN } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

export function tempDir(t) {
  const d = mkdtempSync(join(tmpdir(), 'coffre-e2e-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

// A data dir with académies 10 and 02, one establishment in each.
export function fixture(t) {
  const root = tempDir(t);
  const data = join(root, 'data');
  const init = coffre(['init', '--data', data, '--academie', '10', '--academie', '02']);
  if (init.code !== 0) throw new Error(`init failed: ${init.err}`);
  const e1 = coffre(['establishment', 'add', '--data', data, '--uai', '0999001W', '--name', 'Collège A', '--academie', '10']);
  const e2 = coffre(['establishment', 'add', '--data', data, '--uai', '0999002X', '--name', 'Lycée B', '--academie', '02']);
  if (e1.code !== 0 || e2.code !== 0) throw new Error(`establishment add failed: ${e1.err}${e2.err}`);
  return { root, data, e1: e1.out.trim(), e2: e2.out.trim(), initOut: init.out };
}

export function addStudent(data, uai, ine, family = 'MARTIN', extra = []) {
  return coffre(['student', 'add', '--data', data, '--establishment', uai, '--ine', ine,
    '--family-name', family, '--given-names', 'Zoé', '--birth-date', '2011-05-02', ...extra]);
}
