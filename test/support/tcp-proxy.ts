// A userland TCP proxy for the partition tests (test/support/netns.ts starts it inside a host's
// network namespace with `ip netns exec`). It does two jobs the kernel cannot do here:
//   - a gateway: it listens on a unix socket in the file system, which a process in another
//     network namespace (the test runner) can connect to, and dials the target from inside
//     its own namespace, so the test's gRPC clients speak from that host and its partitions
//     apply to them;
//   - delays: the kernel's netem module is not on these machines, so each forward can hold
//     the bytes of each direction for a while (in order), e.g. so that a partition lands
//     while requests are on their way.
//
// Control: one JSON command per stdin line, one JSON answer per stdout line, in order:
//   {"op":"listen","id":"a","listen":"/path.sock" | "10.213.0.5:11211","target":"host:port",
//    "upMs":0,"downMs":0}                                  → {"ok":"a"}
//   {"op":"delay","id":"a","upMs":20,"downMs":20}           → {"ok":"a"}  (up = towards target)
//   {"op":"close","id":"a"}  stop listening, destroy its connections → {"ok":"a"}
// An error is answered {"error":"..."} and the proxy goes on. It prints {"ready":true} first.
// Closing stdin ends it.
import { connect, createServer, type Server, type Socket } from 'node:net';
import { unlinkSync } from 'node:fs';
import { createInterface } from 'node:readline';

export type ProxyCommand =
  | {
      readonly op: 'listen';
      readonly id: string;
      /** A unix socket path (starts with '/') or host:port. */
      readonly listen: string;
      readonly target: string;
      readonly upMs?: number;
      readonly downMs?: number;
    }
  | { readonly op: 'delay'; readonly id: string; readonly upMs: number; readonly downMs: number }
  | { readonly op: 'close'; readonly id: string };

export type ProxyAnswer = { readonly ok: string } | { readonly error: string } | { readonly ready: true };

interface Forward {
  readonly server: Server;
  readonly sockets: Set<Socket>;
  upMs: number;
  downMs: number;
  readonly path: string | undefined;
}

const forwards = new Map<string, Forward>();

function hostPort(text: string): { host: string; port: number } {
  const at = text.lastIndexOf(':');
  const port = Number(text.slice(at + 1));
  if (at <= 0 || !Number.isInteger(port) || port <= 0 || port > 65535) throw new Error(`not host:port: ${text}`);
  return { host: text.slice(0, at), port };
}

/**
 * Copies `from` to `to`, holding each chunk for delayMs() (read when the chunk arrives), in
 * order: a chunk never overtakes an earlier one, even when the delay shrinks meanwhile.
 */
function pipeDelayed(from: Socket, to: Socket, delayMs: () => number): void {
  const queue: { at: number; chunk: Buffer }[] = [];
  let timer: NodeJS.Timeout | undefined;
  const pump = () => {
    timer = undefined;
    const now = performance.now();
    while (queue.length > 0 && queue[0]!.at <= now) to.write(queue.shift()!.chunk);
    if (queue.length > 0) timer = setTimeout(pump, queue[0]!.at - now);
    else if (from.readableEnded) to.end();
  };
  from.on('data', (chunk: Buffer) => {
    const wait = delayMs();
    if (wait <= 0 && queue.length === 0) {
      to.write(chunk);
      return;
    }
    queue.push({ at: performance.now() + wait, chunk });
    timer ??= setTimeout(pump, Math.max(0, queue[0]!.at - performance.now()));
  });
  from.on('end', () => {
    if (queue.length === 0) to.end();
  });
  from.on('close', () => {
    if (timer !== undefined && to.destroyed) clearTimeout(timer);
  });
}

function listen(command: Extract<ProxyCommand, { op: 'listen' }>): Promise<void> {
  if (forwards.has(command.id)) throw new Error(`forward ${command.id} exists`);
  const target = hostPort(command.target);
  const sockets = new Set<Socket>();
  const server = createServer({ pauseOnConnect: true }, (client) => {
    const upstream = connect(target.port, target.host);
    sockets.add(client);
    sockets.add(upstream);
    const forward = forwards.get(command.id)!;
    // A reset on either side resets the other; a half-close is passed on (after the delay).
    const both = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', both).on('close', both);
    upstream.on('error', both).on('close', both);
    upstream.setNoDelay(true);
    if (client.setNoDelay !== undefined && command.listen[0] !== '/') client.setNoDelay(true);
    upstream.once('connect', () => client.resume());
    pipeDelayed(client, upstream, () => forward.upMs);
    pipeDelayed(upstream, client, () => forward.downMs);
  });
  const path = command.listen.startsWith('/') ? command.listen : undefined;
  forwards.set(command.id, { server, sockets, upMs: command.upMs ?? 0, downMs: command.downMs ?? 0, path });
  return new Promise((resolve, reject) => {
    server.once('error', (err) => {
      forwards.delete(command.id);
      reject(err);
    });
    if (path !== undefined) {
      try {
        unlinkSync(path);
      } catch {
        // not there: fine
      }
      server.listen(path, () => resolve());
    } else {
      const at = hostPort(command.listen);
      server.listen(at.port, at.host, () => resolve());
    }
  });
}

function close(id: string): void {
  const forward = forwards.get(id);
  if (forward === undefined) throw new Error(`no forward ${id}`);
  forwards.delete(id);
  forward.server.close();
  for (const socket of forward.sockets) socket.destroy();
}

async function run(command: ProxyCommand): Promise<ProxyAnswer> {
  switch (command.op) {
    case 'listen':
      await listen(command);
      return { ok: command.id };
    case 'delay': {
      const forward = forwards.get(command.id);
      if (forward === undefined) throw new Error(`no forward ${command.id}`);
      forward.upMs = command.upMs;
      forward.downMs = command.downMs;
      return { ok: command.id };
    }
    case 'close':
      close(command.id);
      return { ok: command.id };
  }
}

const say = (answer: ProxyAnswer) => process.stdout.write(`${JSON.stringify(answer)}\n`);

// Commands run one at a time, so answers come back in the order the commands were sent.
let chain = Promise.resolve();
const input = createInterface({ input: process.stdin });
input.on('line', (line) => {
  if (line.trim() === '') return;
  chain = chain.then(async () => {
    try {
      say(await run(JSON.parse(line) as ProxyCommand));
    } catch (err) {
      say({ error: err instanceof Error ? err.message : String(err) });
    }
  });
});
input.on('close', () => {
  for (const id of [...forwards.keys()]) close(id);
  process.exit(0);
});
say({ ready: true });
