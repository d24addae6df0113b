// The wire module (client/common) is the one contract between server and SDK: the error
// reasons both sides take from its table, the retry policy the SDK reads from the .proto
// through its loader, and the import layering that lets the SDK ship without server code.
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { Metadata, status } from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import {
  ERROR_REASONS,
  ERROR_TRAILER,
  type ErrorReason,
  LOADER_OPTIONS,
  PROTO_FILES,
  protoRoot,
  repeatableMethods,
} from '../../client/common/index.js';
import { fromOpError } from '../../client/errors.js';
import * as sdk from '../../client/index.js';
import { retryPolicy } from '../../client/unary-call.js';
import * as server from '../../src/errors.js';
import { REPO_ROOT } from '../support/spawn.js';

const log = { error() {}, warn() {}, info() {}, debug() {} } as unknown as server.Logger;

/** Every error class src/errors.ts exports: LatchkeyError and its subclasses. */
const SERVER_CLASSES = Object.entries(server as Record<string, unknown>).filter(
  (entry): entry is [string, typeof server.LatchkeyError] =>
    typeof entry[1] === 'function' &&
    (entry[1] === server.LatchkeyError || entry[1].prototype instanceof server.LatchkeyError),
);

/** What the SDK must throw for each server error class, whatever the method. */
const SDK_CLASS_OF: Record<string, typeof sdk.LatchkeyError> = {
  LatchkeyError: sdk.InternalError,
  InvalidArgumentError: sdk.InvalidArgumentError,
  LockBusyError: sdk.LockBusyError,
  NotHolderError: sdk.NotHolderError,
  LeaseExpiredError: sdk.NotHolderError,
  SessionExpiredError: sdk.NotHolderError,
  NotLeaderError: sdk.NotLeaderError,
  NotElectedError: sdk.NotElectedError,
  AbortedError: sdk.LatchkeyError,
  FailedPreconditionError: sdk.FailedPreconditionError,
  FencedOutError: sdk.FencedOutError,
  BackendUnavailableError: sdk.UnavailableError,
  RequestNotSentError: sdk.UnavailableError,
  ShuttingDownError: sdk.UnavailableError,
  CancelledError: sdk.CancelledError,
  PermissionDeniedError: sdk.PermissionDeniedError,
  ResourceExhaustedError: sdk.ResourceExhaustedError,
};

/** A grpc-js ServiceError as a call would fail with it, from what the server's toStatus() answered. */
function wireError(answer: ReturnType<typeof server.toStatus>): Error {
  return Object.assign(new Error(`${answer.code}: ${answer.details}`), answer);
}

function listFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? listFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

/** Every relative module a TypeScript file imports or re-exports, resolved to a repository path. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/(?:from|import)\s*\(?\s*'(\.[^']+)'/g)].map((m) =>
    relative(REPO_ROOT, resolve(dirname(file), m[1]!)).replace(/\.js$/, '.ts'),
  );
}

describe('error reasons: one table, both sides', () => {
  it('every server error class has its own entry in REASONS, with the status code the table gives its reason', () => {
    assert.ok(SERVER_CLASSES.length >= 12, `only ${SERVER_CLASSES.length} classes found`);
    for (const [name, ErrorClass] of SERVER_CLASSES) {
      const reason = server.REASONS.get(ErrorClass);
      assert.ok(reason !== undefined, `src/errors.ts REASONS has no entry for ${name}`);
      assert.equal(new ErrorClass('x').code, ERROR_REASONS[reason], `${name} is sent as ${reason}`);
    }
    const sent = new Set(server.REASONS.values());
    const unused = (Object.keys(ERROR_REASONS) as ErrorReason[]).filter((r) => !sent.has(r));
    assert.deepEqual(unused, [], 'reasons no server error is sent as');
  });

  it('no server error class is defined outside src/errors.ts, where REASONS can list it', () => {
    const bases = SERVER_CLASSES.map(([name]) => name).join('|');
    const elsewhere = listFiles(join(REPO_ROOT, 'src'))
      .filter((f) => !f.endsWith(join('src', 'errors.ts')))
      .flatMap((f) =>
        [...readFileSync(f, 'utf8').matchAll(new RegExp(`class (\\w+) extends (${bases})\\b`, 'g'))].map(
          (m) => `${relative(REPO_ROOT, f)}: ${m[1]} extends ${m[2]}`,
        ),
      );
    assert.deepEqual(elsewhere, []);
  });

  it('each server error reaches the SDK as its class, by reason, whatever the method would suggest', () => {
    // Release would make a bare FAILED_PRECONDITION "not holder", Acquire a bare ABORTED "busy",
    // Set a bare FAILED_PRECONDITION "fenced out": the reason must win over each guess.
    for (const method of ['Release', 'Acquire', 'Set', 'Incr']) {
      for (const [name, ErrorClass] of SERVER_CLASSES) {
        const answer = server.toStatus(new ErrorClass(`${name} from the server`), log);
        const unary = sdk.fromStatus(wireError(answer), method);
        assert.equal(unary.constructor, SDK_CLASS_OF[name], `${name} from ${method}: ${unary.constructor.name}`);
        assert.equal(unary.code, answer.code);
        assert.equal(unary.message, `${name} from the server`);
        // The same error as one operation of a batch or pipeline.
        const op = server.toOpError(new ErrorClass(`${name} from the server`), log);
        assert.equal(op.reason, server.REASONS.get(ErrorClass));
        const pipelined = fromOpError(op, method);
        assert.equal(pipelined.constructor, SDK_CLASS_OF[name], `${name} pipelined from ${method}`);
      }
    }
  });

  it('the SDK has a class for every reason of the table, sent with its code', () => {
    for (const [reason, code] of Object.entries(ERROR_REASONS)) {
      const metadata = new Metadata();
      metadata.set(ERROR_TRAILER, reason);
      const err = sdk.fromStatus(wireError({ code, details: 'x', metadata }), 'Get');
      assert.equal(err.code, code, reason);
      const named = Object.entries(SDK_CLASS_OF).find(([server]) => server === reason)?.[1];
      // Each reason is some server class's name; InternalError is the base class's reason.
      assert.equal(err.constructor, named ?? sdk.InternalError, `${reason}: ${err.constructor.name}`);
    }
  });

  it("a class's name is not what travels: a subclass, or a renamed class, sends the reason REASONS gives", () => {
    class HolderGoneError extends server.NotHolderError {}
    const answer = server.toStatus(new HolderGoneError('gone'), log);
    assert.deepEqual(answer.metadata!.get(ERROR_TRAILER), ['NotHolderError']);
    assert.equal(server.toOpError(new HolderGoneError('gone'), log).reason, 'NotHolderError');
    // Unknown errors: INTERNAL without a reason on a call, InternalError as an operation's.
    assert.deepEqual(server.toStatus(new TypeError('bug'), log).metadata!.get(ERROR_TRAILER), []);
    assert.equal(server.toOpError(new TypeError('bug'), log).reason, 'InternalError');
  });

  it('a reason the SDK does not know (a newer server) falls back to the status code', () => {
    const metadata = new Metadata();
    metadata.set(ERROR_TRAILER, 'SomeFutureError');
    const err = sdk.fromStatus(wireError({ code: status.FAILED_PRECONDITION, details: 'x', metadata }), 'Release');
    assert.equal(err.constructor, sdk.NotHolderError);
  });
});

describe('retry policy: declared in the .proto, read from the method definitions', () => {
  it('the SDK retries exactly the unary methods marked with idempotency_level', () => {
    assert.deepEqual([...repeatableMethods('latchkey.v1.Locks')].sort(), ['Describe', 'Refresh']);
    assert.deepEqual([...repeatableMethods('latchkey.v1.Cache')].sort(), ['Get', 'GetMany']);
    const retry = { attempts: 3, baseDelayMs: 1, maxDelayMs: 1 };
    assert.equal(retryPolicy('latchkey.v1.Locks', 'Describe', retry), retry);
    assert.equal(retryPolicy('latchkey.v1.Cache', 'Get', retry), retry);
    for (const method of ['Acquire', 'Release', 'Watch'])
      assert.equal(retryPolicy('latchkey.v1.Locks', method, retry), false, method);
    for (const method of ['Set', 'Cas', 'Add', 'Delete', 'Incr', 'Touch', 'SetMany', 'Pipeline'])
      assert.equal(retryPolicy('latchkey.v1.Cache', method, retry), false, method);
    // By service: Cache has no Describe to retry.
    assert.equal(retryPolicy('latchkey.v1.Cache', 'Describe', retry), false);
    assert.equal(retryPolicy('latchkey.v1.Locks', 'Describe', { ...retry, attempts: 1 }), false);
    assert.equal(retryPolicy('latchkey.v1.Locks', 'Describe', false), false);
  });

  it('the marks are what decides: a copy of the .proto with other marks gives other methods', () => {
    const dir = mkdtempSync(join(tmpdir(), 'latchkey-proto-'));
    try {
      cpSync(protoRoot(), dir, { recursive: true });
      const locks = join(dir, 'latchkey/v1/locks.proto');
      const text = readFileSync(locks, 'utf8')
        .replace(
          'rpc Acquire(AcquireRequest) returns (Lease);',
          'rpc Acquire(AcquireRequest) returns (Lease) { option idempotency_level = IDEMPOTENT; }',
        )
        .replace(/(rpc Describe\(DescribeRequest\) returns \(LockState\)) \{[^}]*\}/, '$1;')
        .replace(
          'rpc Watch(WatchRequest) returns (stream LockEvent);',
          'rpc Watch(WatchRequest) returns (stream LockEvent) { option idempotency_level = NO_SIDE_EFFECTS; }',
        );
      writeFileSync(locks, text);
      const definition = protoLoader.loadSync([...PROTO_FILES], { ...LOADER_OPTIONS, includeDirs: [dir] });
      // Watch is marked but streams: never a unary retry.
      assert.deepEqual([...repeatableMethods('latchkey.v1.Locks', definition)].sort(), ['Acquire', 'Refresh']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('layering: the SDK ships without server code', () => {
  it('src/ reaches into client/ only through the wire module and the SDK entries', () => {
    const offending = listFiles(join(REPO_ROOT, 'src')).flatMap((file) =>
      importsOf(file)
        .filter((target) => target.startsWith('client/'))
        .filter((target) => target !== 'client/common/index.ts' && target !== 'client/index.ts')
        .map((target) => `${relative(REPO_ROOT, file)} imports ${target}`),
    );
    assert.deepEqual(offending, []);
  });

  it('client/ imports nothing of src/ or test/, and client/common nothing of the rest of client/', () => {
    const offending = listFiles(join(REPO_ROOT, 'client')).flatMap((file) => {
      const from = relative(REPO_ROOT, file);
      return importsOf(file)
        .filter(
          (target) =>
            !target.startsWith('client/') ||
            (from.startsWith('client/common/') && !target.startsWith('client/common/')),
        )
        .map((target) => `${from} imports ${target}`);
    });
    assert.deepEqual(offending, []);
  });

  it(`the ${ERROR_TRAILER} trailer is named in one place`, () => {
    const naming = [...listFiles(join(REPO_ROOT, 'src')), ...listFiles(join(REPO_ROOT, 'client'))]
      .filter((f) => readFileSync(f, 'utf8').includes(`'${ERROR_TRAILER}'`))
      .map((f) => relative(REPO_ROOT, f));
    assert.deepEqual(naming, ['client/common/reasons.ts']);
  });
});
