// `grpcurl` for the README's examples (grpcurl itself is not packaged for Debian): its command
// line, with the work done by the real buf CLI wherever buf can do it.
// - `list` and `SERVICE/METHOD` run `buf curl` (reflection, protobuf-go descriptors, protojson
//   in and out: the JSON grpcurl prints, lowerCamel names, defaults omitted); a failed call
//   is reported in grpcurl's words ("ERROR:", Code, Message; exit 64 + the code).
// - `describe SYMBOL` is done here, since buf has no such command: from the files server
//   reflection serves alone, printed as grpcurl prints them, with the .proto comments their
//   source info carries and the method options.
//
// Supported: grpcurl -plaintext [-d JSON] ADDRESS (list | describe SYMBOL | SERVICE/METHOD)
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type protobuf from 'protobufjs';
import descriptorModule from 'protobufjs/ext/descriptor/index.js';
import { bufCurl, rpcStatus } from './buf.js';

const require = createRequire(import.meta.url);
const REFLECTION_PROTO = join(
  dirname(require.resolve('@grpc/reflection/package.json')),
  'build',
  'proto',
  'grpc',
  'reflection',
  'v1alpha',
  'reflection.proto',
);
const descriptor = descriptorModule as unknown as { FileDescriptorProto: protobuf.Type };
const TIMEOUT_MS = 10_000;

interface ReflectionResponse {
  list_services_response?: { service: { name: string }[] };
  file_descriptor_response?: { file_descriptor_proto: Buffer[] };
  error_response?: { error_code: number; error_message: string };
}

// --- the descriptor shapes used here (protobufjs toObject of descriptor.proto, camelCase) ---

interface Location {
  path?: number[];
  leadingComments?: string;
}
interface FieldDesc {
  name: string;
  number: number;
  label?: string;
  type?: string;
  typeName?: string;
  oneofIndex?: number;
  proto3Optional?: boolean;
}
interface MessageDesc {
  name: string;
  field?: FieldDesc[];
  nestedType?: MessageDesc[];
  enumType?: EnumDesc[];
  oneofDecl?: { name: string }[];
  options?: { mapEntry?: boolean };
}
interface EnumDesc {
  name: string;
  value?: { name: string; number: number }[];
}
interface MethodDesc {
  name: string;
  inputType: string;
  outputType: string;
  clientStreaming?: boolean;
  serverStreaming?: boolean;
  options?: { idempotencyLevel?: string };
}
interface ServiceDesc {
  name: string;
  method?: MethodDesc[];
}
interface FileDesc {
  name: string;
  package?: string;
  dependency?: string[];
  messageType?: MessageDesc[];
  enumType?: EnumDesc[];
  service?: ServiceDesc[];
  sourceCodeInfo?: { location?: Location[] };
}

/** One reflection stream; each ask() sends a request and awaits its answer, in order. */
export class ReflectionClient {
  readonly #client: grpc.Client;
  readonly #stream: grpc.ClientDuplexStream<object, ReflectionResponse>;
  readonly #waiting: { resolve: (r: ReflectionResponse) => void; reject: (e: Error) => void }[] = [];

  constructor(address: string) {
    const definition = protoLoader.loadSync(REFLECTION_PROTO, {
      keepCase: true,
      longs: String,
      enums: String,
      defaults: true,
      oneofs: true,
    });
    const pkg = grpc.loadPackageDefinition(definition) as unknown as {
      grpc: {
        reflection: {
          v1alpha: { ServerReflection: new (address: string, creds: grpc.ChannelCredentials) => grpc.Client };
        };
      };
    };
    this.#client = new pkg.grpc.reflection.v1alpha.ServerReflection(address, grpc.credentials.createInsecure());
    const method = (
      this.#client as unknown as Record<
        string,
        (options: grpc.CallOptions) => grpc.ClientDuplexStream<object, ReflectionResponse>
      >
    ).ServerReflectionInfo!;
    this.#stream = method.call(this.#client, { deadline: Date.now() + TIMEOUT_MS });
    this.#stream.on('data', (response) => this.#waiting.shift()?.resolve(response));
    this.#stream.on('error', (err) => {
      for (const w of this.#waiting.splice(0)) w.reject(err);
    });
  }

  ask(request: object): Promise<ReflectionResponse> {
    return new Promise((resolve, reject) => {
      this.#waiting.push({ resolve, reject });
      this.#stream.write(request);
    });
  }

  /** The files defining `symbol` and, transitively, every file they declare as a dependency. */
  async filesFor(symbol: string): Promise<FileDesc[]> {
    const files = new Map<string, FileDesc>();
    const take = (response: ReflectionResponse) => {
      if (response.error_response) throw new Error(`reflection: ${response.error_response.error_message}`);
      for (const bytes of response.file_descriptor_response!.file_descriptor_proto) {
        const file = descriptor.FileDescriptorProto.toObject(descriptor.FileDescriptorProto.decode(bytes), {
          enums: String,
          longs: String,
        }) as FileDesc;
        files.set(file.name, file);
      }
    };
    take(await this.ask({ file_containing_symbol: symbol }));
    for (let missing = this.#missing(files); missing.length > 0; missing = this.#missing(files)) {
      for (const name of missing) take(await this.ask({ file_by_filename: name }));
    }
    return [...files.values()];
  }

  #missing(files: Map<string, FileDesc>): string[] {
    return [...files.values()].flatMap((f) => f.dependency ?? []).filter((d) => !files.has(d));
  }

  close(): void {
    this.#stream.end();
    this.#client.close();
  }
}

// --- describe, as grpcurl prints it ---

/** A definition found in a file, with its source-info path (FileDescriptorProto field numbers). */
type Found =
  | { kind: 'service'; desc: ServiceDesc; file: FileDesc; path: number[] }
  | { kind: 'message'; desc: MessageDesc; file: FileDesc; path: number[] }
  | { kind: 'enum'; desc: EnumDesc; file: FileDesc; path: number[] };

function index(files: FileDesc[]): Map<string, Found> {
  const found = new Map<string, Found>();
  const visitMessage = (scope: string, m: MessageDesc, file: FileDesc, path: number[]) => {
    const name = `${scope}.${m.name}`;
    found.set(name, { kind: 'message', desc: m, file, path });
    (m.nestedType ?? []).forEach((n, i) => visitMessage(name, n, file, [...path, 3, i]));
    (m.enumType ?? []).forEach((e, i) =>
      found.set(`${name}.${e.name}`, { kind: 'enum', desc: e, file, path: [...path, 4, i] }),
    );
  };
  for (const file of files) {
    const pkg = file.package ? `.${file.package}` : '';
    (file.messageType ?? []).forEach((m, i) => visitMessage(pkg, m, file, [4, i]));
    (file.enumType ?? []).forEach((e, i) =>
      found.set(`${pkg}.${e.name}`, { kind: 'enum', desc: e, file, path: [5, i] }),
    );
    (file.service ?? []).forEach((s, i) =>
      found.set(`${pkg}.${s.name}`, { kind: 'service', desc: s, file, path: [6, i] }),
    );
  }
  return found;
}

/** The element's leading comment as `//` lines at `indent`, or nothing. */
function comment(file: FileDesc, path: number[], indent: string): string[] {
  const key = path.join('.');
  const text = file.sourceCodeInfo?.location?.find((l) => (l.path ?? []).join('.') === key)?.leadingComments;
  if (text === undefined) return [];
  return text
    .replace(/\n$/, '')
    .split('\n')
    .map((line) => `${indent}//${line}`);
}

const SCALARS: Record<string, string> = {
  TYPE_DOUBLE: 'double',
  TYPE_FLOAT: 'float',
  TYPE_INT64: 'int64',
  TYPE_UINT64: 'uint64',
  TYPE_INT32: 'int32',
  TYPE_FIXED64: 'fixed64',
  TYPE_FIXED32: 'fixed32',
  TYPE_BOOL: 'bool',
  TYPE_STRING: 'string',
  TYPE_BYTES: 'bytes',
  TYPE_UINT32: 'uint32',
  TYPE_SFIXED32: 'sfixed32',
  TYPE_SFIXED64: 'sfixed64',
  TYPE_SINT32: 'sint32',
  TYPE_SINT64: 'sint64',
};

function fieldType(f: FieldDesc, symbols: Map<string, Found>): string {
  if (f.typeName === undefined) return SCALARS[f.type ?? ''] ?? String(f.type);
  const target = symbols.get(f.typeName);
  if (target?.kind === 'message' && target.desc.options?.mapEntry) {
    const [key, value] = target.desc.field ?? [];
    return `map<${fieldType(key!, symbols)}, ${fieldType(value!, symbols)}>`;
  }
  return f.typeName;
}

function describeMessage(found: Extract<Found, { kind: 'message' }>, symbols: Map<string, Found>): string[] {
  const { desc, file, path } = found;
  const lines = [...comment(file, path, ''), `message ${desc.name} {`];
  const fieldLine = (f: FieldDesc, i: number, indent: string) => {
    const type = fieldType(f, symbols);
    const label = type.startsWith('map<')
      ? ''
      : f.label === 'LABEL_REPEATED'
        ? 'repeated '
        : f.proto3Optional
          ? 'optional '
          : '';
    return [...comment(file, [...path, 2, i], indent), `${indent}${label}${type} ${f.name} = ${f.number};`];
  };
  const fields = desc.field ?? [];
  const printedOneofs = new Set<number>();
  fields.forEach((f, i) => {
    if (f.oneofIndex === undefined || f.proto3Optional) return lines.push(...fieldLine(f, i, '  '));
    if (printedOneofs.has(f.oneofIndex)) return;
    printedOneofs.add(f.oneofIndex);
    lines.push(`  oneof ${desc.oneofDecl![f.oneofIndex]!.name} {`);
    fields.forEach(
      (g, j) => g.oneofIndex === f.oneofIndex && !g.proto3Optional && lines.push(...fieldLine(g, j, '    ')),
    );
    lines.push('  }');
  });
  return [...lines, '}'];
}

function describeFound(found: Found, symbols: Map<string, Found>): string[] {
  const { file, path } = found;
  if (found.kind === 'message') return describeMessage(found, symbols);
  if (found.kind === 'enum') {
    const values = (found.desc.value ?? []).flatMap((v, i) => [
      ...comment(file, [...path, 2, i], '  '),
      `  ${v.name} = ${v.number};`,
    ]);
    return [...comment(file, path, ''), `enum ${found.desc.name} {`, ...values, '}'];
  }
  const methods = (found.desc.method ?? []).flatMap((m, i) => {
    const rpc = `  rpc ${m.name} ( ${m.clientStreaming ? 'stream ' : ''}${m.inputType} ) returns ( ${m.serverStreaming ? 'stream ' : ''}${m.outputType} )`;
    const level = m.options?.idempotencyLevel;
    const body =
      level === undefined || level === 'IDEMPOTENCY_UNKNOWN'
        ? [`${rpc};`]
        : [`${rpc} {`, `    option idempotency_level = ${level};`, '  }'];
    return [...comment(file, [...path, 2, i], '  '), ...body];
  });
  return [...comment(file, path, ''), `service ${found.desc.name} {`, ...methods, '}'];
}

/** `grpcurl describe SYMBOL`: a service, message or enum (methods are described with their service). */
export async function describeSymbol(address: string, symbol: string): Promise<string> {
  const reflection = new ReflectionClient(address);
  try {
    const symbols = index(await reflection.filesFor(symbol));
    const found = symbols.get(`.${symbol}`);
    if (found === undefined) throw new Error(`Symbol not found: ${symbol}`);
    return [`${symbol} is a ${found.kind}:`, ...describeFound(found, symbols)].join('\n');
  } finally {
    reflection.close();
  }
}

// --- the command line ---

/** grpcurl's name for a status code: NOT_FOUND → NotFound. */
function codeName(code: number): string {
  return grpc.status[code]!.toLowerCase().replace(/(^|_)([a-z])/g, (_, __, c: string) => c.toUpperCase());
}

async function main(argv: string[]): Promise<number> {
  let data: string | undefined;
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '-plaintext') continue;
    if (argv[i] === '-d') data = argv[++i] ?? '';
    else rest.push(argv[i]!);
  }
  const [address, verb, symbol] = rest as [string, string, string | undefined];
  if (verb === 'describe') {
    console.log(await describeSymbol(address, symbol!));
    return 0;
  }
  const r =
    verb === 'list'
      ? await bufCurl(address, '', ['--list-services'])
      : await bufCurl(address, `/${verb}`, data === undefined ? [] : ['-d', data]);
  process.stdout.write(r.stdout);
  const code = rpcStatus(r);
  if (code === 0) return 0;
  if (code === undefined) {
    process.stderr.write(r.stderr);
    return 1;
  }
  const { message } = JSON.parse(r.stderr) as { message: string };
  console.error(`ERROR:\n  Code: ${codeName(code)}\n  Message: ${message}`);
  return 64 + code;
}

if (process.argv[1] === import.meta.filename) {
  main(process.argv.slice(2)).then(
    (code) => (process.exitCode = code),
    (err: unknown) => {
      console.error(`Failed: ${(err as Error).message}`);
      process.exitCode = 1;
    },
  );
}
