// Server reflection, walked the way grpcurl walks it: list_services, file_containing_symbol
// for each service, file_by_filename for every declared dependency, then a dynamic message
// built from the served descriptors alone, filled from JSON (proto names and lowerCamel
// JSON names, as grpcurl's protojson accepts) and sent as raw bytes. Nothing here uses the
// server's own loader except to compare against the .proto files. problemsOf() models the
// checks of protobuf-go's descriptor builder, with failure messages that say what is wrong;
// reflection-buf.test.ts runs the real one (buf curl).
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import protobuf from 'protobufjs';
// The descriptor extension: google.protobuf.* types (the full descriptor.proto, with
// json_name, proto3_optional and source_code_info) and Root.fromDescriptor.
import descriptorModule from 'protobufjs/ext/descriptor/index.js';
import { PROTO_FILES, protoRoot } from '../../client/common/index.js';
import { startServer, type TestServer } from '../support/server.js';

const CALL_TIMEOUT_MS = 10_000;
const require = createRequire(import.meta.url);
const REFLECTION_PROTO_DIR = join(dirname(require.resolve('@grpc/reflection/package.json')), 'build', 'proto');
const VERSIONS = ['v1', 'v1alpha'] as const;
type Version = (typeof VERSIONS)[number];

const descriptor = descriptorModule as unknown as { FileDescriptorProto: protobuf.Type };

// --- plain shapes of the descriptor messages (protobufjs toObject, camelCase properties) ---

interface FieldDesc {
  name: string;
  number: number;
  label: number;
  type: number;
  typeName?: string;
  jsonName?: string;
  oneofIndex?: number;
  proto3Optional?: boolean;
  options?: { packed?: boolean };
}
interface EnumDesc {
  name: string;
  value: { name: string; number: number }[];
}
interface MessageDesc {
  name: string;
  field: FieldDesc[];
  nestedType: MessageDesc[];
  enumType: EnumDesc[];
  oneofDecl: { name: string }[];
  options?: { mapEntry?: boolean };
}
interface MethodDesc {
  name: string;
  inputType: string;
  outputType: string;
  clientStreaming?: boolean;
  serverStreaming?: boolean;
}
interface ServiceDesc {
  name: string;
  method: MethodDesc[];
}
interface FileDesc {
  name?: string;
  package?: string;
  dependency: string[];
  publicDependency: number[];
  messageType: MessageDesc[];
  enumType: EnumDesc[];
  service: ServiceDesc[];
  syntax?: string;
  edition?: number;
  sourceCodeInfo?: { location: { leadingComments?: string; trailingComments?: string }[] };
}

interface ServedFile {
  readonly bytes: Buffer;
  readonly message: protobuf.Message;
  readonly plain: FileDesc;
}

function decodeFile(bytes: Buffer): ServedFile {
  const message = descriptor.FileDescriptorProto.decode(bytes);
  const plain = descriptor.FileDescriptorProto.toObject(message, {
    arrays: true,
    longs: String,
    enums: Number,
    defaults: false,
  }) as FileDesc;
  return { bytes, message, plain };
}

// FieldDescriptorProto.Type / Label values.
const TYPE_MESSAGE = 11;
const TYPE_ENUM = 14;
const TYPE_GROUP = 10;
const LABEL_REPEATED = 3;
const SCALAR_NAMES: Record<number, string> = {
  1: 'double',
  2: 'float',
  3: 'int64',
  4: 'uint64',
  5: 'int32',
  6: 'fixed64',
  7: 'fixed32',
  8: 'bool',
  9: 'string',
  12: 'bytes',
  13: 'uint32',
  15: 'sfixed32',
  16: 'sfixed64',
  17: 'sint32',
  18: 'sint64',
};
const PACKABLE = new Set([1, 2, 3, 4, 5, 6, 7, 8, 13, 14, 15, 16, 17, 18]);

/** protoc's MapEntryName: the field name in CamelCase (an underscore upper-cases the next letter) + "Entry". */
function mapEntryName(field: string): string {
  return `${field.replace(/(?:^|_)([a-z]?)/g, (_, c: string) => c.toUpperCase())}Entry`;
}

/** protoc's ToJsonName: drop underscores, upper-case the letter after each. */
function lowerCamel(name: string): string {
  return name.replace(/_+([a-z0-9]?)/g, (_, c: string) => c.toUpperCase());
}

// --- a reflection client ---

interface ReflectionResponse {
  message_response:
    | 'file_descriptor_response'
    | 'list_services_response'
    | 'error_response'
    | 'all_extension_numbers_response';
  file_descriptor_response?: { file_descriptor_proto: Buffer[] };
  list_services_response?: { service: { name: string }[] };
  error_response?: { error_code: number; error_message: string };
}

function reflectionClient(address: string, version: Version): grpc.Client {
  const definition = protoLoader.loadSync(`grpc/reflection/${version}/reflection.proto`, {
    includeDirs: [REFLECTION_PROTO_DIR],
    keepCase: true,
    longs: String,
    enums: String,
    bytes: Buffer,
    defaults: true,
    oneofs: true,
  });
  const pkg = grpc.loadPackageDefinition(definition) as unknown as {
    grpc: { reflection: Record<Version, { ServerReflection: grpc.ServiceClientConstructor }> };
  };
  return new pkg.grpc.reflection[version].ServerReflection(address, grpc.credentials.createInsecure());
}

/** One ServerReflectionInfo stream; requests are answered in order, one response each. */
class ReflectionSession {
  readonly #call: grpc.ClientDuplexStream<object, ReflectionResponse>;
  readonly #pending: { resolve(r: ReflectionResponse): void; reject(e: Error): void }[] = [];
  #failure: Error | undefined;

  constructor(client: grpc.Client) {
    const open = (
      client as unknown as {
        ServerReflectionInfo(options: grpc.CallOptions): grpc.ClientDuplexStream<object, ReflectionResponse>;
      }
    ).ServerReflectionInfo;
    this.#call = open.call(client, { deadline: Date.now() + 6 * CALL_TIMEOUT_MS });
    this.#call.on('data', (response: ReflectionResponse) => this.#pending.shift()?.resolve(response));
    this.#call.on('error', (err: Error) => {
      this.#failure = err;
      for (const p of this.#pending.splice(0)) p.reject(err);
    });
  }

  request(message: object): Promise<ReflectionResponse> {
    if (this.#failure) return Promise.reject(this.#failure);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no reflection response within ${CALL_TIMEOUT_MS} ms to ${JSON.stringify(message)}`)),
        CALL_TIMEOUT_MS,
      );
      this.#pending.push({
        resolve: (r) => (clearTimeout(timer), resolve(r)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      });
      this.#call.write({ host: '', ...message });
    });
  }

  async files(message: object): Promise<ServedFile[]> {
    const response = await this.request(message);
    if (response.message_response !== 'file_descriptor_response') {
      throw new Error(
        `${JSON.stringify(message)}: ${JSON.stringify(response.error_response ?? response.message_response)}`,
      );
    }
    return response.file_descriptor_response!.file_descriptor_proto.map(decodeFile);
  }

  end(): void {
    this.#call.end();
  }
}

/** What grpcurl ends up with after `grpcurl list` and `grpcurl describe` of every service. */
interface Walk {
  readonly services: string[];
  /** Every file seen, by name. */
  readonly files: Map<string, ServedFile>;
  /** file_by_filename requests made for declared dependencies that had not arrived yet. */
  readonly fetchedByName: string[];
}

async function walk(session: ReflectionSession): Promise<Walk> {
  const listed = await session.request({ list_services: '*' });
  assert.equal(listed.message_response, 'list_services_response', JSON.stringify(listed));
  const services = listed.list_services_response!.service.map((s) => s.name);
  const files = new Map<string, ServedFile>();
  const fetchedByName: string[] = [];
  const add = (file: ServedFile) => {
    const name = file.plain.name ?? '';
    assert.ok(name.length > 0, 'a served FileDescriptorProto has no name');
    const seen = files.get(name);
    if (seen) assert.ok(seen.bytes.equals(file.bytes), `two different files are both named ${name}`);
    else files.set(name, file);
  };
  for (const service of services) {
    for (const file of await session.files({ file_containing_symbol: service })) add(file);
  }
  // grpcurl (protoreflect's client) asks for each declared import it has not been sent.
  for (let missing = missingDeps(files); missing.length > 0; missing = missingDeps(files)) {
    for (const name of missing) {
      fetchedByName.push(name);
      for (const file of await session.files({ file_by_filename: name })) add(file);
      assert.ok(files.has(name), `file_by_filename("${name}") did not return ${name}`);
    }
  }
  return { services, files, fetchedByName };
}

function missingDeps(files: Map<string, ServedFile>): string[] {
  return [...new Set([...files.values()].flatMap((f) => f.plain.dependency))].filter((d) => !files.has(d));
}

// --- resolving names the way protobuf's descriptor builders do ---

type Symbol =
  | { kind: 'message'; desc: MessageDesc; file: string }
  | { kind: 'enum'; desc: EnumDesc; file: string }
  | { kind: 'service'; desc: ServiceDesc; file: string };

function symbolsOf(files: Map<string, ServedFile>): Map<string, Symbol> {
  const symbols = new Map<string, Symbol>();
  const define = (fullName: string, symbol: Symbol) => {
    assert.ok(
      !symbols.has(fullName),
      `${fullName} is defined twice (in ${symbols.get(fullName)?.file} and ${symbol.file})`,
    );
    symbols.set(fullName, symbol);
  };
  const visitMessage = (scope: string, m: MessageDesc, file: string) => {
    const name = `${scope}.${m.name}`;
    define(name, { kind: 'message', desc: m, file });
    for (const nested of m.nestedType) visitMessage(name, nested, file);
    for (const e of m.enumType) define(`${name}.${e.name}`, { kind: 'enum', desc: e, file });
  };
  for (const [fileName, { plain }] of files) {
    const pkg = plain.package ? `.${plain.package}` : '';
    for (const m of plain.messageType) visitMessage(pkg, m, fileName);
    for (const e of plain.enumType) define(`${pkg}.${e.name}`, { kind: 'enum', desc: e, file: fileName });
    for (const s of plain.service) define(`${pkg}.${s.name}`, { kind: 'service', desc: s, file: fileName });
  }
  return symbols;
}

/** The file itself, its imports, and whatever those re-export with `import public`. */
function visibleFiles(files: Map<string, ServedFile>, fileName: string): Set<string> {
  const visible = new Set([fileName]);
  const addPublic = (name: string) => {
    const file = files.get(name);
    if (!file) return;
    for (const i of file.plain.publicDependency) {
      const dep = file.plain.dependency[i]!;
      if (!visible.has(dep)) {
        visible.add(dep);
        addPublic(dep);
      }
    }
  };
  for (const dep of files.get(fileName)!.plain.dependency) {
    visible.add(dep);
    addPublic(dep);
  }
  return visible;
}

/** Resolves `ref` from `scope` (a fully-qualified name with a leading dot), relative or absolute. */
function resolve(
  symbols: Map<string, Symbol>,
  visible: Set<string>,
  scope: string,
  ref: string,
): { fullName: string; symbol: Symbol } | string {
  const candidates: string[] = [];
  if (ref.startsWith('.')) candidates.push(ref);
  else
    for (let s = scope; ; s = s.slice(0, Math.max(0, s.lastIndexOf('.')))) {
      candidates.push(`${s}.${ref}`);
      if (s === '') break;
    }
  for (const fullName of candidates) {
    const symbol = symbols.get(fullName);
    if (symbol === undefined) continue;
    if (!visible.has(symbol.file))
      return `"${ref}" resolves to ${fullName} in ${symbol.file}, which is not imported (grpcurl: "not imported")`;
    return { fullName, symbol };
  }
  return `"${ref}" does not resolve (tried ${candidates.join(', ')})`;
}

/** Every problem a strict descriptor builder (protobuf-go's protodesc, under grpcurl) would have. */
function problemsOf(w: Walk): string[] {
  const problems: string[] = [];
  const symbols = symbolsOf(w.files);
  for (const [fileName, { plain }] of w.files) {
    if (plain.syntax !== 'proto3' && plain.syntax !== 'editions')
      problems.push(`${fileName}: syntax is ${JSON.stringify(plain.syntax)}, so clients read it as proto2`);
    const visible = visibleFiles(w.files, fileName);
    const pkg = plain.package ? `.${plain.package}` : '';
    const checkMessage = (scope: string, m: MessageDesc) => {
      const name = `${scope}.${m.name}`;
      const numbers = new Set<number>();
      const names = new Set<string>();
      const jsonNames = new Map<string, string>();
      const syntheticFrom = m.oneofDecl.length;
      let firstSynthetic = m.oneofDecl.length;
      for (const f of m.field) {
        const where = `${name}.${f.name}`;
        if (numbers.has(f.number)) problems.push(`${where}: field number ${f.number} used twice`);
        if (names.has(f.name)) problems.push(`${where}: field name used twice`);
        numbers.add(f.number);
        names.add(f.name);
        const json = f.jsonName ?? lowerCamel(f.name);
        if (jsonNames.has(json)) problems.push(`${where}: JSON name "${json}" also belongs to ${jsonNames.get(json)}`);
        jsonNames.set(json, f.name);
        if (f.jsonName !== undefined && f.jsonName !== lowerCamel(f.name))
          problems.push(`${where}: json_name "${f.jsonName}" is not the lowerCamel of its name`);
        if (f.type === TYPE_MESSAGE || f.type === TYPE_ENUM || f.type === TYPE_GROUP) {
          const target = resolve(symbols, visible, name, f.typeName ?? '');
          if (typeof target === 'string') problems.push(`${where}: type ${target}`);
          else if ((f.type === TYPE_ENUM) !== (target.symbol.kind === 'enum') || target.symbol.kind === 'service') {
            problems.push(`${where}: declared type ${f.type} but "${f.typeName}" is a ${target.symbol.kind}`);
          }
        } else if (!(f.type in SCALAR_NAMES)) problems.push(`${where}: unknown field type ${f.type}`);
        if (f.options?.packed !== undefined && !(f.label === LABEL_REPEATED && PACKABLE.has(f.type))) {
          problems.push(
            `${where}: [packed = ${f.options.packed}] on a field that is not a repeated scalar (protodesc refuses it)`,
          );
        }
        if (f.oneofIndex !== undefined && (f.oneofIndex < 0 || f.oneofIndex >= m.oneofDecl.length))
          problems.push(`${where}: oneof_index ${f.oneofIndex} out of range`);
        if (f.proto3Optional) {
          // A synthetic oneof: exactly this field, after every real oneof.
          const members = m.field.filter((g) => g.oneofIndex === f.oneofIndex);
          if (f.oneofIndex === undefined || members.length !== 1)
            problems.push(`${where}: proto3 optional field without its own synthetic oneof`);
          else firstSynthetic = Math.min(firstSynthetic, f.oneofIndex);
        } else if (f.oneofIndex !== undefined && f.oneofIndex >= firstSynthetic && syntheticFrom > 0) {
          problems.push(`${where}: a real oneof comes after a synthetic one`);
        }
      }
      // A map field's entry type: nested right here, the type of that one repeated field,
      // and named as protoc names it (protobuf-go: "incorrect implicit map entry name").
      for (const entry of m.nestedType.filter((n) => n.options?.mapEntry)) {
        const entryName = `${name}.${entry.name}`;
        const users = m.field.filter((f) => {
          const target = f.type === TYPE_MESSAGE ? resolve(symbols, visible, name, f.typeName ?? '') : undefined;
          return typeof target === 'object' && target.fullName === entryName;
        });
        if (users.length !== 1 || users[0]!.label !== LABEL_REPEATED)
          problems.push(`${entryName}: a map entry type must be the type of exactly one repeated field of ${name}`);
        else if (entry.name !== mapEntryName(users[0]!.name))
          problems.push(
            `${name}.${users[0]!.name}: map entry type named ${entry.name}, not ${mapEntryName(users[0]!.name)} (incorrect implicit map entry name)`,
          );
      }
      for (const nested of m.nestedType) checkMessage(name, nested);
    };
    for (const m of plain.messageType) checkMessage(pkg, m);
    for (const s of plain.service) {
      for (const method of s.method) {
        for (const [role, ref] of [
          ['input', method.inputType],
          ['output', method.outputType],
        ] as const) {
          const target = resolve(symbols, visible, `${pkg}.${s.name}`, ref);
          if (typeof target === 'string') problems.push(`${pkg}.${s.name}.${method.name}: ${role} type ${target}`);
          else if (target.symbol.kind !== 'message')
            problems.push(`${pkg}.${s.name}.${method.name}: ${role} type ${ref} is a ${target.symbol.kind}`);
        }
      }
    }
  }
  for (const service of w.services) {
    const symbol = symbols.get(`.${service}`);
    if (symbol?.kind !== 'service') problems.push(`listed service ${service} is not defined by any file served for it`);
  }
  return problems;
}

// --- the .proto files, parsed here, as the reference for names ---

function contract(): protobuf.Root {
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => join(protoRoot(), target);
  root.loadSync([...PROTO_FILES], { keepCase: true });
  root.resolveAll();
  return root;
}

function typeLabel(f: FieldDesc): string {
  return f.type === TYPE_MESSAGE || f.type === TYPE_ENUM ? 'ref' : SCALAR_NAMES[f.type]!;
}

// --- grpcurl-style JSON (protojson's parsing rules, for the shapes used here) ---

/** Maps JSON keys (proto name or JSON name, never both) to a protobufjs fromObject input. */
function fromJson(
  type: protobuf.Type,
  json: Record<string, unknown>,
  jsonNames: Map<string, Map<string, string>>,
): Record<string, unknown> {
  const names = jsonNames.get(type.fullName)!;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(json)) {
    const field = type.fieldsArray.find((f) => f.name === key || names.get(f.name) === key);
    if (field === undefined) throw new Error(`unknown field "${key}" in ${type.fullName.slice(1)}`);
    if (field.name in out) throw new Error(`field ${field.name} given twice in ${type.fullName.slice(1)}`);
    field.resolve();
    out[field.name] =
      field.resolvedType instanceof protobuf.Type
        ? fromJson(field.resolvedType, value as Record<string, unknown>, jsonNames)
        : value;
  }
  return out;
}

/** protojson output: JSON names, 64-bit integers as strings, bytes as base64, enums by name. */
function toJson(
  type: protobuf.Type,
  message: protobuf.Message,
  jsonNames: Map<string, Map<string, string>>,
): Record<string, unknown> {
  const object = type.toObject(message, { longs: String, enums: String, bytes: String, defaults: true });
  const names = jsonNames.get(type.fullName)!;
  return Object.fromEntries(Object.entries(object).map(([k, v]) => [names.get(k) ?? k, v]));
}

describe('server reflection, as grpcurl uses it', () => {
  let s: TestServer;
  const walks = new Map<Version, Walk>();

  before(async () => {
    s = await startServer();
    for (const version of VERSIONS) {
      const client = reflectionClient(s.address, version);
      const session = new ReflectionSession(client);
      try {
        walks.set(version, await walk(session));
      } finally {
        session.end();
        client.close();
      }
    }
  });

  after(async () => {
    await s?.[Symbol.asyncDispose]();
  });

  /** Runs fn on a fresh reflection stream of the given version. */
  async function withSession<T>(version: Version, fn: (session: ReflectionSession) => Promise<T>): Promise<T> {
    const client = reflectionClient(s.address, version);
    const session = new ReflectionSession(client);
    try {
      return await fn(session);
    } finally {
      session.end();
      client.close();
    }
  }

  test('list_services names the latchkey services, the same on v1 and v1alpha', (t) => {
    const v1 = walks.get('v1')!;
    assert.ok(v1.services.includes('latchkey.v1.Locks'), v1.services.join(', '));
    assert.ok(v1.services.includes('latchkey.v1.Cache'), v1.services.join(', '));
    assert.ok(v1.services.includes('latchkey.v1.Elections'), v1.services.join(', '));
    assert.deepEqual(walks.get('v1alpha')!.services, v1.services);
    t.diagnostic(`services: ${v1.services.join(', ')}`);
    t.diagnostic(
      `files: ${[...v1.files.keys()].join(', ')}; fetched by name: ${v1.fetchedByName.join(', ') || 'none'}`,
    );
  });

  test('the resolution check itself catches what grpcurl would refuse', () => {
    const file = (name: string, extra: Partial<FileDesc>): [string, ServedFile] => [
      name,
      {
        bytes: Buffer.from(name),
        message: undefined as unknown as protobuf.Message,
        plain: {
          name,
          package: 'p',
          dependency: [],
          publicDependency: [],
          messageType: [],
          enumType: [],
          service: [],
          syntax: 'proto3',
          ...extra,
        },
      },
    ];
    const msg = (name: string, field: FieldDesc[] = [], oneofDecl: { name: string }[] = []): MessageDesc => ({
      name,
      field,
      nestedType: [],
      enumType: [],
      oneofDecl,
    });
    const broken: Walk = {
      services: ['p.S', 'p.Missing'],
      fetchedByName: [],
      files: new Map([
        file('a.proto', {
          messageType: [
            {
              ...msg('A', [
                { name: 'b', number: 1, label: 1, type: TYPE_MESSAGE, typeName: 'B' },
                { name: 'gone', number: 2, label: 1, type: TYPE_MESSAGE, typeName: '.p.Gone' },
                { name: 'e', number: 3, label: 1, type: TYPE_ENUM, typeName: 'A' },
                { name: 'x_y', number: 4, label: 1, type: 9 },
                { name: 'xY', number: 5, label: 1, type: 9 },
                { name: 'n', number: 6, label: 1, type: 4, options: { packed: true } },
                { name: 'o', number: 7, label: 1, type: 9, proto3Optional: true },
                { name: 'statuses', number: 8, label: 3, type: TYPE_MESSAGE, typeName: '.p.A.Statuses' },
              ]),
              // protobufjs's rendering of `map<string, B> statuses`: protoc names the entry StatusesEntry.
              nestedType: [
                {
                  ...msg('Statuses', [
                    { name: 'key', number: 1, label: 1, type: 9 },
                    { name: 'value', number: 2, label: 1, type: 9 },
                  ]),
                  options: { mapEntry: true },
                },
              ],
            },
          ],
          service: [{ name: 'S', method: [{ name: 'M', inputType: '.p.A', outputType: '.p.Nope' }] }],
        }),
        file('b.proto', { messageType: [msg('B')], syntax: undefined }),
      ]),
    };
    const problems = problemsOf(broken).join('\n');
    for (const expected of [
      /b\.proto: syntax is undefined/,
      /p\.A\.b: type "B" resolves to \.p\.B in b\.proto, which is not imported/,
      /p\.A\.gone: type "\.p\.Gone" does not resolve/,
      /p\.A\.e: declared type 14 but "A" is a message/,
      /p\.A\.xY: JSON name "xY" also belongs to x_y/,
      /p\.A\.n: \[packed = true\]/,
      /p\.A\.o: proto3 optional field without its own synthetic oneof/,
      /p\.S\.M: output type "\.p\.Nope" does not resolve/,
      /p\.A\.statuses: map entry type named Statuses, not StatusesEntry/,
      /listed service p\.Missing/,
    ]) {
      assert.match(problems, expected);
    }
  });

  for (const version of VERSIONS) {
    test(`${version}: every method's types and every field's type resolve from the served files and their declared imports`, () => {
      assert.deepEqual(problemsOf(walks.get(version)!), []);
    });
  }

  test('v1 and v1alpha serve byte-identical files', () => {
    const v1 = walks.get('v1')!.files;
    const alpha = walks.get('v1alpha')!.files;
    assert.deepEqual([...alpha.keys()].sort(), [...v1.keys()].sort());
    for (const [name, file] of v1) assert.ok(alpha.get(name)!.bytes.equals(file.bytes), name);
  });

  test("the served messages, enums and services are the .proto files', with their snake_case field names", () => {
    const root = contract();
    const symbols = symbolsOf(walks.get('v1')!.files);
    const fileOf = new Map<string, ServedFile>(walks.get('v1')!.files);
    let checked = 0;
    const visit = (ns: protobuf.NamespaceBase) => {
      for (const nested of ns.nestedArray) {
        if (nested instanceof protobuf.Type) {
          const served = symbols.get(nested.fullName);
          assert.equal(served?.kind, 'message', `${nested.fullName} is not served`);
          const desc = served.desc as MessageDesc;
          const visible = visibleFiles(fileOf, served.file);
          // One line per field: number, name, label, type, and its oneof. A proto3 `optional`
          // must arrive as such (proto3_optional + a synthetic oneof), not as a plain oneof.
          const want = nested.fieldsArray.map((f) => {
            // A map field is served as protoc compiles it: a repeated field of its nested entry type.
            if (f instanceof protobuf.MapField)
              return `${f.id} ${f.name} repeated ${nested.fullName}.${mapEntryName(f.name)}`;
            const optional = f.options?.proto3_optional === true;
            const oneof = f.partOf && !optional ? ` oneof ${f.partOf.name}` : '';
            return `${f.id} ${f.name} ${f.repeated ? 'repeated ' : optional ? 'optional ' : ''}${f.resolvedType ? f.resolvedType.fullName : f.type}${oneof}`;
          });
          const have = desc.field.map((f) => {
            const target = typeLabel(f) === 'ref' ? resolve(symbols, visible, nested.fullName, f.typeName!) : undefined;
            const typeName =
              target === undefined ? typeLabel(f) : typeof target === 'string' ? target : target.fullName;
            const oneof =
              f.oneofIndex !== undefined && !f.proto3Optional ? ` oneof ${desc.oneofDecl[f.oneofIndex]?.name}` : '';
            return `${f.number} ${f.name} ${f.label === LABEL_REPEATED ? 'repeated ' : f.proto3Optional ? 'optional ' : ''}${typeName}${oneof}`;
          });
          assert.deepEqual(have, want, nested.fullName);
          checked++;
        } else if (nested instanceof protobuf.Enum) {
          const served = symbols.get(nested.fullName);
          assert.equal(served?.kind, 'enum', `${nested.fullName} is not served`);
          assert.deepEqual(
            Object.fromEntries((served.desc as EnumDesc).value.map((v) => [v.name, v.number])),
            { ...nested.values },
            nested.fullName,
          );
          checked++;
        } else if (nested instanceof protobuf.Service) {
          const served = symbols.get(nested.fullName);
          assert.equal(served?.kind, 'service', `${nested.fullName} is not served`);
          const want = nested.methodsArray.map(
            (m) =>
              `${m.name}(${m.requestStream ? 'stream ' : ''}${m.resolvedRequestType!.fullName}) ${m.responseStream ? 'stream ' : ''}${m.resolvedResponseType!.fullName}`,
          );
          const have = (served.desc as ServiceDesc).method.map(
            (m) =>
              `${m.name}(${m.clientStreaming ? 'stream ' : ''}${m.inputType}) ${m.serverStreaming ? 'stream ' : ''}${m.outputType}`,
          );
          assert.deepEqual(have, want, nested.fullName);
          checked++;
        }
        if (nested instanceof protobuf.Namespace || nested instanceof protobuf.Type) visit(nested);
      }
    };
    visit(root);
    assert.ok(checked > 10, `only ${checked} definitions compared`);
    // The names grpcurl users type, spelled as in the .proto.
    const lease = symbols.get('.latchkey.v1.Lease')!.desc as MessageDesc;
    for (const name of ['lease_id', 'fencing_token', 'expires_at_ms'])
      assert.ok(
        lease.field.some((f) => f.name === name),
        `Lease.${name}`,
      );
    const acquire = symbols.get('.latchkey.v1.AcquireRequest')!.desc as MessageDesc;
    for (const name of ['ttl_ms', 'wait_ms'])
      assert.ok(
        acquire.field.some((f) => f.name === name),
        `AcquireRequest.${name}`,
      );
  });

  test('json_name: carried or derivable, and the lowerCamel names grpcurl accepts are unique', (t) => {
    const fields = [...walks.get('v1')!.files.values()].flatMap((f) => f.plain.messageType.flatMap((m) => m.field));
    const carried = fields.filter((f) => f.jsonName !== undefined).length;
    t.diagnostic(
      `${carried} of ${fields.length} fields carry json_name; the rest get protoc's lowerCamel derivation (ttl_ms → ttlMs)`,
    );
    // Uniqueness and consistency are checked per message in problemsOf(); here the derivation itself.
    assert.equal(lowerCamel('expires_at_ms'), 'expiresAtMs');
    assert.equal(lowerCamel('lease_id'), 'leaseId');
  });

  test('every symbol grpcurl may describe resolves; unknown symbols and files are NOT_FOUND', async () => {
    const symbols = symbolsOf(walks.get('v1')!.files);
    const wanted = [...symbols].filter(([name]) => name.startsWith('.latchkey.'));
    for (const version of VERSIONS) {
      await withSession(version, async (session) => {
        for (const [fullName, symbol] of wanted) {
          const names = [fullName.slice(1)];
          if (symbol.kind === 'service')
            names.push(...(symbol.desc as ServiceDesc).method.map((m) => `${fullName.slice(1)}.${m.name}`));
          for (const name of names) {
            const files = await session.files({ file_containing_symbol: name });
            assert.equal(files[0]!.plain.name, symbol.file, `${version} file_containing_symbol(${name})`);
          }
        }
        for (const name of walks.get(version)!.files.keys()) {
          const files = await session.files({ file_by_filename: name });
          assert.equal(files[0]!.plain.name, name, `${version} file_by_filename(${name})`);
        }
        for (const request of [
          { file_containing_symbol: 'latchkey.v1.Nope' },
          { file_by_filename: 'latchkey/v1/nope.proto' },
        ]) {
          const response = await session.request(request);
          assert.equal(response.message_response, 'error_response', JSON.stringify(request));
          assert.equal(
            response.error_response!.error_code,
            grpc.status.NOT_FOUND,
            JSON.stringify(response.error_response),
          );
        }
      });
    }
  });

  describe('a dynamic client built from reflection alone', () => {
    let root: protobuf.Root;
    let jsonNames: Map<string, Map<string, string>>;
    let raw: grpc.Client;

    before(() => {
      const files = [...walks.get('v1')!.files.values()];
      root = (
        protobuf.Root as unknown as { fromDescriptor(set: { file: protobuf.Message[] }): protobuf.Root }
      ).fromDescriptor({ file: files.map((f) => f.message) });
      jsonNames = new Map();
      for (const [fullName, symbol] of symbolsOf(walks.get('v1')!.files)) {
        if (symbol.kind === 'message')
          jsonNames.set(
            fullName,
            new Map((symbol.desc as MessageDesc).field.map((f) => [f.name, f.jsonName ?? lowerCamel(f.name)])),
          );
      }
      raw = new grpc.Client(s.address, grpc.credentials.createInsecure());
    });

    after(() => raw?.close());

    /** `grpcurl -d '<json>' ADDRESS service/method`, minus the process. */
    async function invoke(
      service: string,
      method: string,
      json: Record<string, unknown>,
    ): Promise<Record<string, unknown>> {
      const svc = root.lookupService(service);
      const m = svc.methods[method]!;
      const input = m.resolvedRequestType ?? root.lookupType(m.requestType);
      const output = m.resolvedResponseType ?? root.lookupType(m.responseType);
      const bytes = Buffer.from(input.encode(input.fromObject(fromJson(input, json, jsonNames))).finish());
      const reply = await new Promise<Buffer>((resolve, reject) =>
        raw.makeUnaryRequest(
          `/${service}/${method}`,
          (b: Buffer) => b,
          (b: Buffer) => b,
          bytes,
          new grpc.Metadata(),
          { deadline: Date.now() + CALL_TIMEOUT_MS },
          (err, res) => (err ? reject(err) : resolve(res!)),
        ),
      );
      return toJson(output, output.decode(reply), jsonNames);
    }

    test('Locks: Acquire, Describe, Refresh, Release with snake_case JSON', async () => {
      const lease = await invoke('latchkey.v1.Locks', 'Acquire', {
        name: 'refl-snake',
        ttl_ms: '30000',
        wait_ms: 0,
        owner: 'grpcurl',
      });
      assert.equal(lease.name, 'refl-snake');
      assert.equal(lease.owner, 'grpcurl');
      assert.match(String(lease.leaseId), /^\S+$/);
      assert.match(String(lease.fencingToken), /^[1-9]\d*$/);
      assert.ok(Number(lease.expiresAtMs) > Date.now());
      const state = await invoke('latchkey.v1.Locks', 'Describe', { name: 'refl-snake' });
      assert.equal(state.held, true);
      assert.deepEqual(state.capabilities, {
        across_hosts: false,
        fencing: true,
        fifo: true,
        auto_release: true,
        semaphore: true,
        shared: true,
        watch: true,
        sessions: true,
        elections: true,
      });
      await invoke('latchkey.v1.Locks', 'Refresh', { name: 'refl-snake', lease_id: lease.leaseId, ttl_ms: 40_000 });
      assert.deepEqual(await invoke('latchkey.v1.Locks', 'Release', { name: 'refl-snake', lease_id: lease.leaseId }), {
        released: true,
      });
    });

    test('Locks: the same with lowerCamel JSON names', async () => {
      // 50 s, well above the 15 s default, so the expiry shows that ttlMs reached the server.
      const lease = await invoke('latchkey.v1.Locks', 'Acquire', {
        name: 'refl-camel',
        ttlMs: 50_000,
        waitMs: '0',
        owner: 'grpcurl',
      });
      const left = Number(lease.expiresAtMs) - Date.now();
      assert.ok(left > 15_000 && left <= 50_000, `expires in ${left} ms`);
      const state = await invoke('latchkey.v1.Locks', 'Describe', { name: 'refl-camel' });
      assert.equal(state.fencingToken, lease.fencingToken);
      assert.deepEqual(await invoke('latchkey.v1.Locks', 'Release', { name: 'refl-camel', leaseId: lease.leaseId }), {
        released: true,
      });
    });

    test('Cache: Set, Get, Cas with bytes as base64 and the Outcome enum by name', async () => {
      const value = Buffer.from('hello, grpcurl');
      const set = await invoke('latchkey.v1.Cache', 'Set', {
        key: 'refl-key',
        value: value.toString('base64'),
        ttl_ms: 0,
      });
      assert.match(String(set.cas), /^[1-9]\d*$/);
      const got = await invoke('latchkey.v1.Cache', 'Get', { key: 'refl-key' });
      assert.equal(got.found, true);
      assert.equal(Buffer.from(String(got.value), 'base64').toString(), 'hello, grpcurl');
      assert.equal(got.cas, set.cas);
      const cas = await invoke('latchkey.v1.Cache', 'Cas', {
        key: 'refl-key',
        value: Buffer.from('v2').toString('base64'),
        cas: set.cas,
        ttlMs: '0',
      });
      assert.equal(cas.outcome, 'STORED');
      const stale = await invoke('latchkey.v1.Cache', 'Cas', {
        key: 'refl-key',
        value: Buffer.from('v3').toString('base64'),
        cas: set.cas,
      });
      assert.equal(stale.outcome, 'EXISTS');
    });

    test('a JSON key that is neither a proto name nor a JSON name is refused before sending, as grpcurl does', () => {
      const input = root.lookupType('latchkey.v1.AcquireRequest');
      assert.throws(() => fromJson(input, { name: 'x', ttl: 5 }, jsonNames), /unknown field "ttl"/);
      assert.throws(() => fromJson(input, { name: 'x', TtlMs: 5 }, jsonNames), /unknown field "TtlMs"/);
      assert.throws(() => fromJson(input, { ttl_ms: 1, ttlMs: 2 }, jsonNames), /given twice/);
    });
  });

  test('grpc.health.v1.Health is listed and describable through reflection', async () => {
    assert.ok(walks.get('v1')!.services.includes('grpc.health.v1.Health'), walks.get('v1')!.services.join(', '));
    await withSession('v1', (session) => session.files({ file_containing_symbol: 'grpc.health.v1.Health' }));
  });
});
