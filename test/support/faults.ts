// Helpers of the fault tests (test/server/faults.test.ts): calls that report their status instead
// of throwing, bounded polling, etcd's current leader, and a server restarted on its port.
import * as grpc from '@grpc/grpc-js';
import { etcdctl, type EtcdCluster, type EtcdMember } from './etcd.js';
import { spawnServer, type SpawnedServer } from './spawn.js';

export interface Outcome<T> {
  readonly code: grpc.status;
  readonly details: string;
  /** The response, when code is OK. */
  readonly value?: T;
  /** How long the call took. */
  readonly ms: number;
}

/** A grpc-js unary call that resolves with its outcome, whatever it is (never rejects). */
export function unaryOutcome<T>(
  client: grpc.Client,
  method: string,
  request: object,
  deadlineMs: number,
): Promise<Outcome<T>> {
  const started = performance.now();
  return new Promise((resolve) => {
    const fn = (client as unknown as Record<string, Function>)[method];
    if (typeof fn !== 'function') throw new Error(`no method ${method}`);
    fn.call(client, request, { deadline: Date.now() + deadlineMs }, (err: grpc.ServiceError | null, value: T) => {
      const ms = performance.now() - started;
      resolve(err ? { code: err.code, details: err.details, ms } : { code: grpc.status.OK, details: '', value, ms });
    });
  });
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Calls check() every `everyMs` until it returns a value; throws naming `what` after timeoutMs. */
export async function until<T>(
  what: string,
  timeoutMs: number,
  check: () => Promise<T | undefined> | T | undefined,
  everyMs = 50,
): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    if (performance.now() > deadline)
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${last === undefined ? '' : ` (last error: ${String(last)})`}`,
      );
    await sleep(everyMs);
  }
}

/**
 * The member etcd's `endpoint status` names as leader, or undefined if none answers as one
 * within timeoutMs (an election under way).
 */
export async function etcdLeader(cluster: EtcdCluster, timeoutMs = 5_000): Promise<EtcdMember | undefined> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    try {
      const live = cluster.members.filter((m) => m.pid !== undefined);
      const out = await etcdctl(live.map((m) => m.endpoint).join(','), ['endpoint', 'status', '-w', 'json'], {
        timeoutMs: 3_000,
      });
      // NOTE: member ids are uint64 and lose precision as JSON numbers; compare them as strings.
      const statuses = JSON.parse(out.replace(/:\s*(\d{16,})/g, ':"$1"')) as {
        Endpoint: string;
        Status: { header: { member_id: unknown }; leader: unknown };
      }[];
      const leader = statuses.find((s) => String(s.Status.header.member_id) === String(s.Status.leader));
      const member = cluster.members.find((m) => leader?.Endpoint.replace(/^https?:\/\//, '') === m.endpoint);
      if (member !== undefined) return member;
    } catch {
      // not answering yet: ask again
    }
    await sleep(100);
  }
  return undefined;
}

/**
 * spawnServer with a fixed --listen port in args. The port was free when chosen, but it can
 * be taken in between (a restart asks for it back): a start that fails to bind is retried for
 * up to timeoutMs, any other failure is thrown at once.
 */
export async function spawnOnPort(args: readonly string[], timeoutMs = 10_000): Promise<SpawnedServer> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    try {
      return await spawnServer(args);
    } catch (err) {
      if (!/cannot listen|address already in use|EADDRINUSE/i.test(String(err)) || performance.now() > deadline)
        throw err;
      await sleep(200);
    }
  }
}

/** Channel options that let a client find a restarted server at once (grpc-js backs off reconnects up to 120 s by default). */
export const FAST_RECONNECT: grpc.ChannelOptions = {
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 500,
};
