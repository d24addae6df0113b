// The one place the latchkey .proto files are loaded, with the one set of loader options.
// The server (src/proto.ts) and the SDK both use it, so both see the same field names and
// value shapes as the types in client/generated/ (produced with the same options by
// `npm run gen`).
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
 * exact. These must match the flags of `npm run gen`.
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
