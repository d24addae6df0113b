// A stand-in for grpcurl (not packaged for Debian), for testing the README's grpcurl examples
// verbatim. Like grpcurl it knows nothing but what server reflection serves: it lists
// services, fetches the file descriptors that define a symbol (and their dependencies),
// builds messages from JSON in snake_case or camelCase, and prints replies as protojson
// (lowerCamel names, defaults omitted, 64-bit integers as strings, bytes as base64).
//
// Supported: grpcurl -plaintext [-d JSON] ADDRESS (list | describe SYMBOL | SERVICE/METHOD)
// On an RPC error it prints grpcurl's "ERROR:" block to stderr and exits 64 + the code.
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import protobuf from 'protobufjs';
import descriptorModule from 'protobufjs/ext/descriptor/index.js';

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
const descriptor = descriptorModule as unknown as {
  FileDescriptorProto: protobuf.Type;
  FileDescriptorSet: protobuf.Type;
};
const TIMEOUT_MS = 10_000;

interface ReflectionResponse {
  list_services_response?: { service: { name: string }[] };
  file_descriptor_response?: { file_descriptor_proto: Buffer[] };
  error_response?: { error_code: number; error_message: string };
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

  async services(): Promise<string[]> {
    const response = await this.ask({ list_services: '*' });
    return response.list_services_response!.service.map((s) => s.name).sort();
  }

  /** The files defining `symbol` and, transitively, every file they declare as a dependency. */
  async filesFor(symbol: string): Promise<protobuf.Message[]> {
    const files = new Map<string, protobuf.Message & { name?: string; dependency?: string[] }>();
    const take = (response: ReflectionResponse) => {
      if (response.error_response) throw new Error(`reflection: ${response.error_response.error_message}`);
      for (const bytes of response.file_descriptor_response!.file_descriptor_proto) {
        const file = descriptor.FileDescriptorProto.decode(bytes) as protobuf.Message & {
          name?: string;
          dependency?: string[];
        };
        files.set(file.name ?? '', file);
      }
    };
    take(await this.ask({ file_containing_symbol: symbol }));
    for (let missing = this.#missing(files); missing.length > 0; missing = this.#missing(files)) {
      for (const name of missing) take(await this.ask({ file_by_filename: name }));
    }
    return [...files.values()];
  }

  #missing(files: Map<string, { dependency?: string[] }>): string[] {
    return [...files.values()].flatMap((f) => f.dependency ?? []).filter((d) => !files.has(d));
  }

  close(): void {
    this.#stream.end();
    this.#client.close();
  }
}

/** A protobufjs Root built from served descriptors alone. */
export function rootFrom(files: protobuf.Message[]): protobuf.Root {
  const set = descriptor.FileDescriptorSet.create({ file: files });
  return (protobuf.Root as unknown as { fromDescriptor(set: protobuf.Message): protobuf.Root }).fromDescriptor(set);
}

const lowerCamel = (name: string) => name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());

/** protojson input: each key may be the field's proto name or its lowerCamel JSON name. */
export function fromJson(type: protobuf.Type, json: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(json)) {
    const field = type.fields[key] ?? type.fieldsArray.find((f) => lowerCamel(f.name) === key);
    if (field === undefined) throw new Error(`message type ${type.fullName.slice(1)} has no known field named ${key}`);
    field.resolve();
    const nested = field.resolvedType;
    const convert = (v: unknown) =>
      nested instanceof protobuf.Type && v !== null && typeof v === 'object'
        ? fromJson(nested, v as Record<string, unknown>)
        : v;
    out[field.name] = Array.isArray(value) ? value.map(convert) : convert(value);
  }
  return out;
}

/** protojson output: lowerCamel names, default values omitted. */
export function toJson(type: protobuf.Type, message: protobuf.Message): Record<string, unknown> {
  const plain = type.toObject(message, { longs: String, enums: String, bytes: String, defaults: false });
  const rename = (t: protobuf.Type, object: Record<string, unknown>): Record<string, unknown> =>
    Object.fromEntries(
      Object.entries(object).map(([key, value]) => {
        const field = t.fields[key]!;
        field.resolve();
        const type = field.resolvedType;
        const convert = (v: unknown) =>
          type instanceof protobuf.Type && v !== null && typeof v === 'object'
            ? rename(type, v as Record<string, unknown>)
            : v;
        return [lowerCamel(key), Array.isArray(value) ? value.map(convert) : convert(value)];
      }),
    );
  return rename(type, plain);
}

function describeSymbol(root: protobuf.Root, symbol: string): string {
  const found = root.lookup(symbol);
  if (found instanceof protobuf.Service) {
    const methods = found.methodsArray.map((m) => {
      m.resolve();
      return `  rpc ${m.name} ( .${m.resolvedRequestType!.fullName.slice(1)} ) returns ( .${m.resolvedResponseType!.fullName.slice(1)} );`;
    });
    return `${symbol} is a service:\nservice ${found.name} {\n${methods.join('\n')}\n}`;
  }
  if (found instanceof protobuf.Type) {
    const fields = found.fieldsArray.map(
      (f) =>
        `  ${f.repeated ? 'repeated ' : ''}${f.resolve().resolvedType ? `.${f.resolvedType!.fullName.slice(1)}` : f.type} ${f.name} = ${f.id};`,
    );
    return `${symbol} is a message:\nmessage ${found.name} {\n${fields.join('\n')}\n}`;
  }
  if (found instanceof protobuf.Enum) {
    return `${symbol} is an enum:\nenum ${found.name} {\n${Object.entries(found.values)
      .map(([n, v]) => `  ${n} = ${v};`)
      .join('\n')}\n}`;
  }
  throw new Error(`Symbol not found: ${symbol}`);
}

async function invoke(
  address: string,
  root: protobuf.Root,
  fullMethod: string,
  data: string,
): Promise<Record<string, unknown>> {
  const [serviceName, methodName] = fullMethod.split('/') as [string, string];
  const method = root.lookupService(serviceName).methods[methodName];
  if (method === undefined) throw new Error(`service "${serviceName}" does not include a method named "${methodName}"`);
  method.resolve();
  const input = method.resolvedRequestType!;
  const output = method.resolvedResponseType!;
  const request = input
    .encode(input.fromObject(fromJson(input, JSON.parse(data || '{}') as Record<string, unknown>)))
    .finish();
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  try {
    const reply = await new Promise<Buffer>((resolve, reject) =>
      client.makeUnaryRequest(
        `/${serviceName}/${methodName}`,
        (b: Buffer) => b,
        (b: Buffer) => b,
        Buffer.from(request),
        { deadline: Date.now() + TIMEOUT_MS },
        (err, res) => (err ? reject(err) : resolve(res!)),
      ),
    );
    return toJson(output, output.decode(reply));
  } finally {
    client.close();
  }
}

async function main(argv: string[]): Promise<number> {
  let data = '';
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '-plaintext') continue;
    if (argv[i] === '-d') data = argv[++i] ?? '';
    else rest.push(argv[i]!);
  }
  const [address, verb, symbol] = rest as [string, string, string | undefined];
  const reflection = new ReflectionClient(address);
  try {
    if (verb === 'list') {
      console.log((await reflection.services()).join('\n'));
      return 0;
    }
    if (verb === 'describe') {
      console.log(describeSymbol(rootFrom(await reflection.filesFor(symbol!)), symbol!));
      return 0;
    }
    const root = rootFrom(await reflection.filesFor(verb.split('/')[0]!));
    try {
      console.log(JSON.stringify(await invoke(address, root, verb, data), null, 2));
      return 0;
    } catch (err) {
      const e = err as grpc.ServiceError;
      if (typeof e.code !== 'number') throw err;
      const name = grpc.status[e.code]!.toLowerCase().replace(/(^|_)([a-z])/g, (_, __, c: string) => c.toUpperCase());
      console.error(`ERROR:\n  Code: ${name}\n  Message: ${e.details}`);
      return 64 + e.code;
    }
  } finally {
    reflection.close();
  }
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
