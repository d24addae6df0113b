// The wire contract's checks, run by `npm run proto:check` (check-proto.ts, part of `npm test`)
// and by test/server/proto-contract.test.ts on altered copies: buf lint with buf.yaml's rules,
// buf breaking against the released contract, and buf format. Each takes the folder holding
// buf.yaml and proto/, so a test can run the very same check on a scratch copy.
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { buf, type BufResult } from './buf.js';

export const ROOT = join(import.meta.dirname, '..', '..');

/**
 * The last release of latchkey.v1: the commit whose proto/ clients were generated from.
 * NOTE: when a release lands, set this to its commit and run `npm run proto:released` (which
 * rewrites RELEASED_IMAGE from it); the test that compares the two keeps them in step.
 */
export const RELEASED_COMMIT = 'd779594a2ab3b3b66dbf3b917078bb9bedffc805';

/** The released contract as a buf image (no source info), built from RELEASED_COMMIT's proto/. */
export const RELEASED_IMAGE = join(ROOT, 'proto', 'released', 'latchkey-v1.binpb');

export interface CheckOptions {
  /** The folder holding buf.yaml and proto/; default this repository. */
  readonly root?: string;
  /** Findings as JSON lines (see findings()) instead of path:line:col:message text. */
  readonly json?: boolean;
}

/** One finding of buf lint or buf breaking: the rule (FIELD_NO_DELETE, COMMENT_RPC, ...) and where. */
export interface Finding {
  readonly type: string;
  readonly path: string;
  readonly message: string;
}

function errorFormat(options: CheckOptions): string[] {
  return options.json ? ['--error-format', 'json'] : [];
}

/** buf lint with buf.yaml's rule set. */
export function lint(options: CheckOptions = {}): Promise<BufResult> {
  return buf(['lint', ...errorFormat(options)], { cwd: options.root ?? ROOT });
}

/** buf breaking against the released image: every change a client built on it would break on. */
export function breaking(options: CheckOptions = {}): Promise<BufResult> {
  return buf(['breaking', '--against', RELEASED_IMAGE, ...errorFormat(options)], { cwd: options.root ?? ROOT });
}

/** buf format as a check: prints the diff `buf format -w` would apply; exit code 100 when there is one. */
export function formatCheck(options: Pick<CheckOptions, 'root'> = {}): Promise<BufResult> {
  return buf(['format', '--diff', '--exit-code'], { cwd: options.root ?? ROOT });
}

/** The findings of a run with `json: true`. */
export function findings(result: BufResult): Finding[] {
  return result.stdout
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as Finding);
}

/** A scratch copy of buf.yaml and proto/ to alter; removed on dispose. */
export function scratchContract(): { root: string } & Disposable {
  const root = mkdtempSync(join(tmpdir(), 'latchkey-contract-'));
  cpSync(join(ROOT, 'buf.yaml'), join(root, 'buf.yaml'));
  cpSync(join(ROOT, 'proto'), join(root, 'proto'), { recursive: true });
  return { root, [Symbol.dispose]: () => rmSync(root, { recursive: true, force: true }) };
}

/** True when this clone has `commit` (a shallow clone may not). */
export function hasCommit(commit: string): boolean {
  try {
    execFileSync('git', ['cat-file', '-e', `${commit}^{commit}`], { cwd: ROOT, stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * Builds the image of every .proto file of `commit`'s proto/ (git show, then buf build) into
 * `out`, so a released file deleted since fails the breaking check like a deleted message.
 */
export async function buildReleasedImage(out: string, commit: string = RELEASED_COMMIT): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'latchkey-released-'));
  try {
    const files = execFileSync('git', ['ls-tree', '-r', '--name-only', commit, 'proto/'], { cwd: ROOT })
      .toString()
      .split('\n')
      .filter((f) => f.endsWith('.proto'));
    if (files.length === 0) throw new Error(`${commit} has no .proto files under proto/`);
    for (const file of files) {
      const source = execFileSync('git', ['show', `${commit}:${file}`], { cwd: ROOT });
      const path = join(dir, file.slice('proto/'.length));
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, source);
    }
    const result = await buf(['build', dir, '--exclude-source-info', '-o', out]);
    if (result.code !== 0) throw new Error(`buf build of ${commit}'s proto/ failed:\n${result.stderr}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
