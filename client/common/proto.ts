// The one place the latchkey .proto files are loaded, with the one set of loader options.
// The server and the SDK both load them through here, so both see the same field names and
// value shapes as the types in ./generated/ (written with the same options by `npm run gen`),
// and the same method options (idempotency_level: which calls a client may retry).
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as protoLoader from '@grpc/proto-loader';

export const PROTO_FILES = [
  'latchkey/v1/locks.proto',
  'latchkey/v1/cache.proto',
  'latchkey/v1/elections.proto',
] as const;

/**
 * keepCase: the .proto's snake_case names are what reflection serves, so grpcurl accepts
 * both snake_case and camelCase JSON. longs: String keeps 64-bit cas and fencing tokens
 * exact. These must match the proto-loader-gen-types flags in test/support/generate.ts.
 */
export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: String,
  enums: String,
  bytes: Buffer,
  defaults: true,
  oneofs: true,
};

/** The proto/ folder, found from this file whether it runs from source or from dist/. */
export function protoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, 'proto');
    if (existsSync(join(candidate, PROTO_FILES[0]))) return candidate;
    const parent = dirname(dir);
    if (parent === dir) throw new Error('latchkey: cannot find the proto/ folder next to the package');
    dir = parent;
  }
}

let cached: protoLoader.PackageDefinition | undefined;

export function loadPackageDefinition(): protoLoader.PackageDefinition {
  cached ??= protoLoader.loadSync([...PROTO_FILES], { ...LOADER_OPTIONS, includeDirs: [protoRoot()] });
  return cached;
}

/** The latchkey services, by full name. */
export type ServiceName = 'latchkey.v1.Locks' | 'latchkey.v1.Cache' | 'latchkey.v1.Elections';

const REPEATABLE: ReadonlySet<protoLoader.IdempotencyLevel> = new Set([
  protoLoader.IdempotencyLevel.NO_SIDE_EFFECTS,
  protoLoader.IdempotencyLevel.IDEMPOTENT,
]);

/**
 * The unary methods of `service` that its .proto marks safe to send again
 * (`option idempotency_level = NO_SIDE_EFFECTS` or `IDEMPOTENT`), by method name: the only
 * calls a client may retry. Streams are never in it.
 */
export function repeatableMethods(
  service: ServiceName,
  definition: protoLoader.PackageDefinition = loadPackageDefinition(),
): ReadonlySet<string> {
  const methods = definition[service] as protoLoader.ServiceDefinition | undefined;
  if (methods === undefined) throw new Error(`latchkey: the .proto files define no service ${service}`);
  return new Set(
    Object.entries(methods)
      .filter(([, m]) => !m.requestStream && !m.responseStream && REPEATABLE.has(m.options.idempotency_level))
      .map(([name]) => name),
  );
}
