// Server reflection through a real third-party client: buf curl fetches the descriptors over
// grpc.reflection (v1, or v1alpha when asked) and builds them with protobuf-go's protodesc,
// as grpcurl does, so a descriptor protobuf-go refuses (a map entry not named as protoc
// names it, a type that does not resolve) fails here. Every service and method is reached
// through it, Health is called, and the .proto comments and method options are shown to
// arrive as buf decodes them.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { status } from '@grpc/grpc-js';
import { protoPath as healthProtoPath } from 'grpc-health-check';
import protobuf from 'protobufjs';
import { fileDescriptorProtos, PROTO_FILES, protoRoot } from '../../client/common/index.js';
import { buf, bufCurl, REFLECTION_PROTO_V1, rpcStatus, type BufResult } from '../support/buf.js';
import { startServer, type TestServer } from '../support/server.js';

type Json = Record<string, unknown>;
const REFLECT_PROTOCOLS = ['grpc-v1', 'grpc-v1alpha'] as const;

/** The documents buf prints one after another (one per response message), parsed. */
function documents(text: string): Json[] {
  return text
    .split(/^\}$/m)
    .map((chunk) => chunk.trim())
    .filter((chunk) => chunk !== '')
    .map((chunk) => JSON.parse(`${chunk}\n}`) as Json);
}

function describeFailure(what: string, r: BufResult): string {
  return `${what}: buf exited ${r.code}\n${r.stdout}\n${r.stderr}`;
}

/** Every `service/method` the .proto files define: ours from proto/, Health from grpc-health-check. */
function contractMethods(): string[] {
  const root = new protobuf.Root();
  root.loadSync([...PROTO_FILES.map((f) => join(protoRoot(), f)), healthProtoPath], { keepCase: true });
  const methods: string[] = [];
  const visit = (ns: protobuf.NamespaceBase) => {
    for (const nested of ns.nestedArray) {
      if (nested instanceof protobuf.Service)
        for (const m of nested.methodsArray) methods.push(`${nested.fullName.slice(1)}/${m.name}`);
      if (nested instanceof protobuf.Namespace) visit(nested);
    }
  };
  visit(root);
  return methods.sort();
}

/** The `// ...` lines right above `rpc NAME(` in a .proto file, as protoc records them (leading_comments). */
function rpcComments(protoFile: string): Map<string, string> {
  const lines = readFileSync(join(protoRoot(), protoFile), 'utf8').split('\n');
  const comments = new Map<string, string>();
  lines.forEach((line, i) => {
    const rpc = /^\s*rpc (\w+)\(/.exec(line);
    if (!rpc) return;
    const block: string[] = [];
    for (let j = i - 1; j >= 0 && /^\s*\/\//.test(lines[j]!); j--) block.unshift(lines[j]!.replace(/^\s*\/\//, ''));
    if (block.length > 0) comments.set(rpc[1]!, `${block.join('\n')}\n`);
  });
  return comments;
}

describe('server reflection, as buf curl (protobuf-go) uses it', () => {
  let s: TestServer;
  let scratch: string;

  before(async () => {
    s = await startServer();
    scratch = mkdtempSync(join(tmpdir(), 'latchkey-buf-'));
  });

  after(async () => {
    rmSync(scratch, { recursive: true, force: true });
    await s?.[Symbol.asyncDispose]();
  });

  for (const protocol of REFLECT_PROTOCOLS) {
    test(`${protocol}: --list-services and --list-methods name every service and method of the .proto files`, async () => {
      const services = await bufCurl(s.address, '', ['--reflect-protocol', protocol, '--list-services']);
      assert.equal(services.code, 0, describeFailure('--list-services', services));
      assert.deepEqual(services.stdout.trim().split('\n'), [
        'grpc.health.v1.Health',
        'latchkey.v1.Cache',
        'latchkey.v1.Elections',
        'latchkey.v1.Locks',
      ]);
      // Listing methods makes buf build every service's file: the whole schema must pass protodesc.
      const methods = await bufCurl(s.address, '', ['--reflect-protocol', protocol, '--list-methods']);
      assert.equal(methods.code, 0, describeFailure('--list-methods', methods));
      assert.deepEqual(methods.stdout.trim().split('\n').sort(), contractMethods());
    });

    test(`${protocol}: grpc.health.v1.Health/Check answers SERVING for the server and each latchkey service`, async () => {
      for (const service of ['', 'latchkey.v1.Locks', 'latchkey.v1.Cache', 'latchkey.v1.Elections']) {
        const r = await bufCurl(s.address, '/grpc.health.v1.Health/Check', [
          '--reflect-protocol',
          protocol,
          '-d',
          JSON.stringify({ service }),
        ]);
        assert.equal(r.code, 0, describeFailure(`Check("${service}")`, r));
        assert.deepEqual(JSON.parse(r.stdout), { status: 'SERVING' });
      }
    });
  }

  test('every method of every service is called through reflection alone, and answers as documented', async () => {
    const reached = new Set<string>();
    /** One call; `expect` is the status it must end with (0 = OK). Returns the response documents. */
    const call = async (path: string, data: Json, expect: number, extra: string[] = []): Promise<Json[]> => {
      const r = await bufCurl(s.address, `/${path}`, [...extra, '-d', JSON.stringify(data)]);
      assert.notEqual(rpcStatus(r), undefined, describeFailure(`${path}: buf could not make the call`, r));
      assert.equal(rpcStatus(r), expect, describeFailure(path, r));
      reached.add(path);
      return documents(r.stdout);
    };
    // A stream that stays open: bounded by buf's own deadline, so it ends DEADLINE_EXCEEDED
    // after its first messages.
    const stream = (path: string, data: Json) => call(path, data, status.DEADLINE_EXCEEDED, ['--timeout', '3s']);

    const watches = Promise.all([
      stream('latchkey.v1.Locks/Watch', { name: 'buf/walk' }),
      stream('grpc.health.v1.Health/Watch', { service: 'latchkey.v1.Locks' }),
      stream('latchkey.v1.Elections/Observe', { name: 'buf/elect' }),
    ]);

    const [lease] = await call('latchkey.v1.Locks/Acquire', { name: 'buf/walk', ttl_ms: 30_000, owner: 'buf' }, 0);
    assert.equal(lease!.owner, 'buf');
    assert.match(String(lease!.leaseId), /^\S+$/);
    const [state] = await call('latchkey.v1.Locks/Describe', { name: 'buf/walk' }, 0);
    assert.equal(state!.held, true);
    assert.equal(state!.fencingToken, lease!.fencingToken);
    const [refreshed] = await call(
      'latchkey.v1.Locks/Refresh',
      { name: 'buf/walk', lease_id: lease!.leaseId, ttl_ms: 40_000 },
      0,
    );
    assert.equal(refreshed!.leaseId, lease!.leaseId);
    assert.deepEqual(await call('latchkey.v1.Locks/Release', { name: 'buf/walk', lease_id: lease!.leaseId }, 0), [
      { released: true },
    ]);
    await call('latchkey.v1.Locks/Acquire', { name: '' }, status.INVALID_ARGUMENT);

    const [leadership] = await call(
      'latchkey.v1.Elections/Campaign',
      { name: 'buf/elect', value: 'buf-1', ttl_ms: 30_000 },
      0,
    );
    assert.equal(leadership!.value, 'buf-1');
    assert.match(String(leadership!.fencingToken), /^[1-9]\d*$/);
    const ref = {
      name: 'buf/elect',
      backend: leadership!.backend,
      session_id: leadership!.sessionId,
      fencing_token: leadership!.fencingToken,
    };
    const [proclaimed] = await call('latchkey.v1.Elections/Proclaim', { leadership: ref, value: 'buf-2' }, 0);
    assert.equal(proclaimed!.value, 'buf-2');
    const [kept] = await call('latchkey.v1.Elections/KeepAlive', { leadership: ref }, 0);
    assert.equal(kept!.fencingToken, leadership!.fencingToken);
    const [leader] = await call('latchkey.v1.Elections/Leader', { name: 'buf/elect' }, 0);
    assert.deepEqual([leader!.elected, leader!.value], [true, 'buf-2']);
    assert.deepEqual(await call('latchkey.v1.Elections/Resign', { leadership: ref }, 0), [{ resigned: true }]);
    await call('latchkey.v1.Elections/Proclaim', { leadership: ref, value: 'buf-3' }, status.FAILED_PRECONDITION);

    const [set] = await call('latchkey.v1.Cache/Set', { key: 'buf/k', value: 'aGk=' }, 0);
    assert.match(String(set!.cas), /^[1-9]\d*$/);
    assert.deepEqual(await call('latchkey.v1.Cache/Get', { key: 'buf/k' }, 0), [
      { found: true, value: 'aGk=', cas: set!.cas },
    ]);
    const [cas] = await call('latchkey.v1.Cache/Cas', { key: 'buf/k', value: 'aGkh', cas: set!.cas }, 0);
    assert.equal(cas!.outcome, 'STORED');
    const [add] = await call('latchkey.v1.Cache/Add', { key: 'buf/k', value: 'aGk=' }, 0);
    assert.equal(add!.outcome, 'EXISTS');
    const [touch] = await call('latchkey.v1.Cache/Touch', { key: 'buf/k', ttl_ms: 60_000 }, 0);
    assert.equal(touch!.outcome, 'TOUCHED');
    const [incr] = await call('latchkey.v1.Cache/Incr', { key: 'buf/n', delta: 2, initial: 40 }, 0);
    assert.equal(incr!.value, '40');
    const [many] = await call('latchkey.v1.Cache/GetMany', { keys: ['buf/k', 'buf/n', 'buf/none'] }, 0);
    assert.deepEqual(
      (many!.results as Json[]).map((r) => [r.key, r.found ?? false]),
      [
        ['buf/k', true],
        ['buf/n', true],
        ['buf/none', false],
      ],
    );
    const [setMany] = await call('latchkey.v1.Cache/SetMany', { items: [{ key: 'buf/m', value: 'eA==' }] }, 0);
    assert.equal((setMany!.results as Json[]).length, 1);
    const [deleted] = await call('latchkey.v1.Cache/Delete', { key: 'buf/k' }, 0);
    assert.equal(deleted!.outcome, 'DELETED');
    // Bidi: buf sends the one frame, half-closes, and prints each reply frame.
    const [frame] = await call('latchkey.v1.Cache/Pipeline', { ops: [{ tag: 7, get: { key: 'buf/m' } }] }, 0);
    const [result] = frame!.results as Json[];
    assert.equal(result!.tag, '7');
    assert.equal((result!.get as Json).found, true);
    assert.equal((result!.get as Json).value, 'eA==');

    const [check] = await call('grpc.health.v1.Health/Check', {}, 0);
    assert.deepEqual(check, { status: 'SERVING' });
    const [list] = await call('grpc.health.v1.Health/List', {}, 0);
    assert.deepEqual(Object.keys(list!.statuses as Json).sort(), [
      '',
      'latchkey.v1.Cache',
      'latchkey.v1.Elections',
      'latchkey.v1.Locks',
    ]);

    const [lockEvents, healthEvents, leaders] = await watches;
    // The stream began before the campaign or during it; either way it ends with nobody leading.
    assert.equal(leaders!.at(-1)!.elected ?? false, false, JSON.stringify(leaders));
    assert.ok(
      leaders!.every((l) => l.name === 'buf/elect'),
      JSON.stringify(leaders),
    );
    assert.equal(lockEvents![0]!.type, 'STATE', JSON.stringify(lockEvents));
    assert.deepEqual(healthEvents![0], { status: 'SERVING' });

    // Locks/Session is a contract still being served: buf must reach it, whatever it answers.
    const session = await bufCurl(s.address, '/latchkey.v1.Locks/Session', ['--timeout', '3s', '-d', '{}']);
    assert.notEqual(rpcStatus(session), undefined, describeFailure('Locks/Session', session));
    reached.add('latchkey.v1.Locks/Session');

    assert.deepEqual([...reached].sort(), contractMethods(), 'a method the walk does not call: give it a call above');
  });

  describe('the served files, as buf decodes them', () => {
    let served: string;
    let servedBytes: Buffer[];
    let files: Json[];

    before(async () => {
      // buf curl speaks the reflection protocol itself here (its schema from @grpc/reflection's
      // reflection.proto); the files it is sent are written out as a FileDescriptorSet.
      const requests = ['latchkey.v1.Locks', 'latchkey.v1.Cache', 'latchkey.v1.Elections', 'grpc.health.v1.Health'].map(
        (symbol) => JSON.stringify({ file_containing_symbol: symbol }),
      );
      const r = await bufCurl(s.address, '/grpc.reflection.v1.ServerReflection/ServerReflectionInfo', [
        '--schema',
        REFLECTION_PROTO_V1,
        '-d',
        requests.join('\n'),
      ]);
      assert.equal(r.code, 0, describeFailure('ServerReflectionInfo', r));
      // Each response carries its file and the files it imports: keep one copy of each.
      const encoded = new Set<string>();
      for (const response of documents(r.stdout))
        for (const b64 of (response.fileDescriptorResponse as { fileDescriptorProto: string[] }).fileDescriptorProto)
          encoded.add(b64);
      // FileDescriptorSet: `repeated FileDescriptorProto file = 1`.
      servedBytes = [...encoded].map((b64) => Buffer.from(b64, 'base64'));
      const set = protobuf.Writer.create();
      for (const bytes of servedBytes) set.uint32(10).bytes(bytes);
      served = join(scratch, 'served.binpb');
      writeFileSync(served, set.finish());
      const decoded = await buf(['build', served, '-o', '-#format=json']);
      assert.equal(decoded.code, 0, describeFailure('buf build of the served files', decoded));
      files = (JSON.parse(decoded.stdout) as { file: Json[] }).file;
    });

    test("one file per .proto, under its name in proto/, and Health under grpc-go's name for it", () => {
      assert.deepEqual(files.map((f) => f.name).sort(), [
        'grpc/health/v1/health.proto',
        'latchkey/v1/cache.proto',
        'latchkey/v1/elections.proto',
        'latchkey/v1/locks.proto',
      ]);
    });

    test("the served bytes are the compiler's own: @grpc/reflection's decode and re-encode loses nothing", () => {
      const compiled = fileDescriptorProtos().map((b) => b.toString('base64'));
      assert.deepEqual(servedBytes.map((b) => b.toString('base64')).sort(), [...compiled].sort());
    });

    test('protobuf-go builds exactly the served bytes: they serve as a --schema for a call', async () => {
      const r = await bufCurl(s.address, '/latchkey.v1.Locks/Describe', ['--schema', served, '-d', '{"name": "x"}']);
      assert.equal(r.code, 0, describeFailure('Describe with the served files as schema', r));
      assert.equal(JSON.parse(r.stdout).name, 'x');
    });

    test('every rpc carries its comment from the .proto (source info), as grpcurl describe shows it', () => {
      let compared = 0;
      for (const protoFile of PROTO_FILES) {
        const file = files.find((f) => f.name === protoFile)!;
        const locations = (file.sourceCodeInfo as { location: { path?: number[]; leadingComments?: string }[] })
          .location;
        const services = file.service as { name: string; method: { name: string }[] }[];
        for (const [name, comment] of rpcComments(protoFile)) {
          const si = services.findIndex((svc) => svc.method.some((m) => m.name === name));
          const mi = services[si]!.method.findIndex((m) => m.name === name);
          // FileDescriptorProto.service = 6, ServiceDescriptorProto.method = 2.
          const location = locations.find((l) => (l.path ?? []).join('.') === `6.${si}.2.${mi}`);
          assert.equal(location?.leadingComments, comment, `${protoFile} rpc ${name}`);
          compared++;
        }
      }
      assert.ok(compared >= 15, `only ${compared} rpc comments compared`);
      const locks = files.find((f) => f.name === 'latchkey/v1/locks.proto')!;
      assert.match(JSON.stringify(locks.sourceCodeInfo), /Acquire a lock\. wait_ms = 0 tries once/);
    });

    test('the retry policy travels too: idempotency_level on the methods the .proto marks', () => {
      const levels = files.flatMap((f) =>
        (f.service as { name: string; method: { name: string; options?: { idempotencyLevel?: string } }[] }[]).flatMap(
          (svc) =>
            svc.method
              .filter((m) => m.options?.idempotencyLevel !== undefined)
              .map((m) => `${svc.name}/${m.name} ${m.options!.idempotencyLevel}`),
        ),
      );
      assert.deepEqual(levels.sort(), [
        'Cache/Get NO_SIDE_EFFECTS',
        'Cache/GetMany NO_SIDE_EFFECTS',
        'Elections/KeepAlive IDEMPOTENT',
        'Elections/Leader NO_SIDE_EFFECTS',
        'Locks/Describe NO_SIDE_EFFECTS',
        'Locks/Refresh IDEMPOTENT',
      ]);
    });
  });
});
