// ServerList: the latchkey servers a client may talk to, and which one it talks to now. Every
// call and stream goes to the current server; when one of them shows that server gone (it is
// unreachable, its connection dropped, it is shutting down, or it left a call unanswered: a
// partition drops packets silently, so a dead connection looks open), the next calls go to
// the next address, round the list. Each address has its own channel, made when first used.
import { InvalidArgumentError } from './errors.js';
import type {
  CacheClient as CacheStub,
  ElectionsClient as ElectionsStub,
  LocksClient as LocksStub,
} from './common/index.js';

/** One server: its address and the stubs of its channel (every service shares it). */
export interface Server {
  readonly address: string;
  readonly locks: LocksStub;
  readonly cache: CacheStub;
  readonly elections: ElectionsStub;
}

/**
 * The addresses connect() was given: an array, or one string with commas between addresses
 * (as `latchkey --address a:1,b:2` takes them). Each is a host:port or any gRPC target.
 * NOTE: grpc-js's own `ipv4:a:1,b:2` form splits into `ipv4:a:1` and `b:2`, both of which
 * grpc-js accepts, so the client then fails over between them itself.
 */
export function parseAddresses(address: string | readonly string[]): string[] {
  const list = typeof address === 'string' ? address.split(',') : [...address];
  if (list.length === 0) throw new InvalidArgumentError('connect() needs at least one server address');
  return list.map((entry, i) => {
    const trimmed = typeof entry === 'string' ? entry.trim() : '';
    if (trimmed === '')
      throw new InvalidArgumentError(
        `server address ${i + 1} of ${list.length} is empty: give host:port, e.g. connect(['10.0.0.1:50051', '10.0.0.2:50051'])`,
      );
    return trimmed;
  });
}

export class ServerList {
  readonly addresses: readonly string[];
  readonly #make: (address: string) => Server;
  readonly #servers: (Server | undefined)[];
  #current = 0;

  constructor(addresses: readonly string[], make: (address: string) => Server) {
    this.addresses = addresses;
    this.#make = make;
    this.#servers = addresses.map(() => undefined);
  }

  get size(): number {
    return this.addresses.length;
  }

  /** The server calls go to now. */
  get current(): Server {
    const i = this.#current;
    let server = this.#servers[i];
    if (server === undefined) {
      server = this.#make(this.addresses[i]!);
      this.#servers[i] = server;
    }
    return server;
  }

  /**
   * `server` went away: later calls go to the next address. A no-op when calls have already
   * moved on from it (many calls see the same server go), and with a single address.
   */
  failed(server: Server): void {
    if (this.#servers[this.#current] !== server) return;
    this.#current = (this.#current + 1) % this.addresses.length;
  }

  /** Closes every channel made. Calls and streams still open on them are cut off by grpc-js. */
  close(): void {
    for (const server of this.#servers) server?.locks.close();
  }
}
