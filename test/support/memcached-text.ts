// memcached's own view, over its text protocol on a raw TCP socket: what a non-latchkey
// client reads (get, gets) and memcached's counters (stats). Every wait is bounded.
import { connect } from 'node:net';

/** One request; resolves with the reply once it matches `until` (within 5 s). */
export function textRequest(port: number, request: Buffer | string, until: RegExp): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let reply = Buffer.alloc(0);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`memcached on ${port} did not answer ${JSON.stringify(String(request))} within 5 s`));
    }, 5_000);
    socket.on('data', (chunk) => {
      reply = Buffer.concat([reply, chunk]);
      if (until.test(reply.toString('latin1'))) {
        clearTimeout(timer);
        socket.end();
        resolve(reply);
      }
    });
    socket.on('error', (err) => (clearTimeout(timer), reject(err)));
    socket.write(request);
  });
}

/** `stats`: memcached's general counters (cmd_set, delete_hits, touch_hits, ...) as numbers. */
export async function memcachedStats(port: number): Promise<Record<string, number>> {
  const reply = (await textRequest(port, 'stats\r\n', /END\r\n$/)).toString('latin1');
  const stats: Record<string, number> = {};
  for (const [, name, value] of reply.matchAll(/^STAT (\S+) (\S+)\r$/gm)) stats[name!] = Number(value);
  return stats;
}

export interface TextItem {
  readonly flags: number;
  readonly cas: bigint;
  readonly value: Buffer;
}

/**
 * `gets k1 k2 ...`: the items memcached holds, with the cas it assigned them. Asks 20 keys
 * at a time (memcached limits the length of a command line).
 */
export async function textGets(port: number, keys: readonly string[]): Promise<Map<string, TextItem>> {
  const items = new Map<string, TextItem>();
  for (let i = 0; i < keys.length; i += 20) {
    const reply = await textRequest(port, `gets ${keys.slice(i, i + 20).join(' ')}\r\n`, /(^|\r\n)END\r\n$/);
    let at = 0;
    for (;;) {
      const eol = reply.indexOf('\r\n', at);
      const line = reply.toString('utf8', at, eol);
      if (line === 'END') break;
      const match = /^VALUE (\S+) (\d+) (\d+) (\d+)$/.exec(line);
      if (match === null) throw new Error(`unexpected gets reply line ${JSON.stringify(line)}`);
      const length = Number(match[3]);
      items.set(match[1]!, {
        flags: Number(match[2]),
        cas: BigInt(match[4]!),
        value: reply.subarray(eol + 2, eol + 2 + length),
      });
      at = eol + 2 + length + 2;
    }
  }
  return items;
}
