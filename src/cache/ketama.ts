// Key → server placement for the memcached pool: libmemcached's ketama continuum, as a
// libmemcached client builds it with its ketama behaviour (MEMCACHED_BEHAVIOR_KETAMA, which
// selects MEMCACHED_DISTRIBUTION_CONSISTENT_KETAMA, unweighted; pylibmc's
// behaviors={"ketama": True}). Such a client, given the same servers, reads latchkey's keys
// from the same servers (test/cache/memcached-ketama.test.ts checks it against pylibmc).
//
// The continuum (libmemcached hosts.cc, update_continuum): each server gets 100 points,
// point i of server "host:port" at one-at-a-time("host:port-i"), or "host-i" when the port
// is memcached's default 11211. A key goes to the server of the first point at or after
// one-at-a-time(key) (hash.cc, dispatch_host), wrapping to the lowest point; with a single
// server nothing is hashed. Adding an (N+1)th server moves about 1/(N+1) of the keys, all
// of them to the new server.
//
// NOTE: hosts are hashed as written, so every client of a pool must spell the servers the
// same way: "127.0.0.1:11211" and "localhost:11211" are different points on the ring (the
// order of the list does not matter). Weights are not supported: a libmemcached client
// given a weight above 1 switches to the weighted continuum (MD5, 160 points per server),
// which this is not.

/** libmemcached's MEMCACHED_POINTS_PER_SERVER (unweighted ketama). */
export const POINTS_PER_SERVER = 100;
/** libmemcached's MEMCACHED_DEFAULT_PORT, left out of a point's name. */
const DEFAULT_PORT = 11211;

/**
 * Bob Jenkins' one-at-a-time hash as libhashkit computes it (hashkit_one_at_a_time, its
 * default hash). NOTE: it reads the bytes through a `const char *`, which is signed on the
 * x86 builds that clients run, so a byte of 0x80 or more is sign-extended before it is
 * added: keys with UTF-8 beyond ASCII depend on it (the pylibmc test covers such keys).
 */
export function oneAtATime(bytes: Uint8Array): number {
  let hash = 0;
  for (const byte of bytes) {
    hash = (hash + (byte >= 0x80 ? byte - 0x100 : byte)) >>> 0;
    hash = (hash + (hash << 10)) >>> 0;
    hash = (hash ^ (hash >>> 6)) >>> 0;
  }
  hash = (hash + (hash << 3)) >>> 0;
  hash = (hash ^ (hash >>> 11)) >>> 0;
  return (hash + (hash << 15)) >>> 0;
}

export interface KetamaServer {
  readonly host: string;
  readonly port: number;
}

/**
 * The continuum of a server list; `serverFor(key)` is the index, in that list, of the
 * server that holds the key.
 *
 * @example
 *   const ring = new Ketama([{ host: '10.0.0.1', port: 11211 }, { host: '10.0.0.2', port: 11211 }]);
 *   ring.serverFor('user:42'); // 0 or 1, as pylibmc with behaviors={"ketama": True} places it
 */
export class Ketama {
  /** Point values, ascending; `#owners[i]` is the server index of point i. */
  readonly #points: Uint32Array;
  readonly #owners: Uint32Array;
  readonly #servers: number;

  constructor(servers: readonly KetamaServer[]) {
    this.#servers = servers.length;
    const points: { value: number; index: number }[] = [];
    servers.forEach(({ host, port }, index) => {
      const name = port === DEFAULT_PORT ? host : `${host}:${port}`;
      for (let i = 0; i < POINTS_PER_SERVER; i++)
        points.push({ value: oneAtATime(Buffer.from(`${name}-${i}`)), index });
    });
    // Ties (equal values) are ordered by server index, as libmemcached's continuum_item_cmp.
    points.sort((a, b) => a.value - b.value || a.index - b.index);
    this.#points = Uint32Array.from(points, (p) => p.value);
    this.#owners = Uint32Array.from(points, (p) => p.index);
  }

  serverFor(key: string): number {
    if (this.#servers <= 1) return 0;
    const hash = oneAtATime(Buffer.from(key));
    // Lower bound: the first point >= hash.
    let left = 0;
    let right = this.#points.length;
    while (left < right) {
      const middle = (left + right) >>> 1;
      if (this.#points[middle]! < hash) left = middle + 1;
      else right = middle;
    }
    return this.#owners[right === this.#points.length ? 0 : right]!;
  }
}
