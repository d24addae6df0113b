// Real etcd servers for tests: one member or a cluster, on free loopback ports, each with a
// temporary data dir. Members are stopped, killed and restarted by PID (never by name), every
// wait is bounded, and whatever a failed start left behind is cleaned up.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';
import type { Launcher } from './spawn.js';

/** Health after a (re)start can take a leader election; a busy 2-core machine is slow. */
const HEALTHY_TIMEOUT_MS = 20_000;
/** How long stop() waits after SIGTERM before it sends SIGKILL. */
const STOP_TIMEOUT_MS = 5_000;

/**
 * NOTE: etcd's minimum lease TTL is ⌈1.5 × election timeout⌉ in whole seconds (with the
 * default 1000 ms it is 2 s, so a 1 s lease silently becomes 2 s). 500 ms makes it 1 s, and
 * a 50 ms heartbeat keeps the 10:1 ratio etcd wants.
 */
const TIMING = ['--heartbeat-interval', '50', '--election-timeout', '500'];

const INSTALL = 'apt-get install etcd-server etcd-client';
/** The generic reason; etcdMissing() returns a precise one (which binary is missing). */
export const ETCD_SKIP_REASON = `etcd not installed: ${INSTALL}`;

/** What is missing ('' = nothing), found once per test process. */
let missing: string | undefined;

/** Whether a command runs and exits 0 (bounded: a wedged binary counts as missing). */
const runs = (command: string, args: readonly string[]) =>
  // NOTE: etcdctl before 3.4 speaks the v2 API unless ETCDCTL_API=3, and v2 has no `version`
  // command: without the variable an installed etcdctl 3.3 would look missing.
  spawnSync(command, args, { stdio: 'ignore', timeout: 10_000, env: { ...process.env, ETCDCTL_API: '3' } }).status ===
  0;

/**
 * The one availability check of every etcd suite: false when `etcd` and `etcdctl` both run,
 * else the reason the suite skips with (`{ skip: etcdMissing() }` prints it). With
 * LATCHKEY_REQUIRE_ALL_SUITES set (CI) a missing etcd throws instead, so the suite fails
 * loudly rather than skipping (as memcachedMissing() does).
 */
export function etcdMissing(): string | false {
  missing ??= [runs('etcd', ['--version']) ? '' : 'etcd', runs('etcdctl', ['version']) ? '' : 'etcdctl']
    .filter((m) => m !== '')
    .join(' and ');
  if (missing === '') return false;
  const reason = `${missing} not installed or not runnable: ${INSTALL}`;
  if (process.env.LATCHKEY_REQUIRE_ALL_SUITES)
    throw new Error(`${reason}; LATCHKEY_REQUIRE_ALL_SUITES forbids skipping`);
  return reason;
}

/** etcdMissing() === false; throws as it does under LATCHKEY_REQUIRE_ALL_SUITES. */
export const etcdAvailable = (): boolean => etcdMissing() === false;

/**
 * Where a member runs. By default on this machine's loopback (free ports); a partition test
 * puts each member on a host of its own network (netns.ts), on etcd's standard ports.
 */
export interface EtcdHost {
  /** The address the member listens on and advertises. */
  readonly address: string;
  /** Starts the etcd process there. */
  readonly launch: Launcher;
  /**
   * One HTTP request to the member's client URL, `http://address:port` + path, from
   * somewhere that reaches it; bounded by timeoutMs.
   */
  http(
    port: number,
    method: 'GET' | 'POST',
    path: string,
    body: string | undefined,
    timeoutMs: number,
  ): Promise<{ status: number; body: string }>;
}

/** This machine: what every etcd test but the partition tests uses. */
const LOOPBACK: EtcdHost = {
  address: '127.0.0.1',
  launch: spawn,
  async http(port, method, path, body, timeoutMs) {
    const res = await fetch(`http://127.0.0.1:${port}${path}`, {
      method,
      body,
      signal: AbortSignal.timeout(timeoutMs),
    });
    return { status: res.status, body: await res.text() };
  },
};

export interface EtcdMember extends AsyncDisposable {
  readonly name: string;
  /** "ADDRESS:PORT", the client endpoint (127.0.0.1 unless placed on a host of its own). */
  readonly endpoint: string;
  /** The running process's pid; undefined while stopped. */
  readonly pid: number | undefined;
  /** SIGTERM, then SIGKILL if it is still running after 5 s; waits for the exit. */
  stop(): Promise<void>;
  /** SIGKILL at once (a crash); waits for the exit. */
  kill9(): Promise<void>;
  /** Starts it again on the same ports and data dir, and waits until it is healthy. */
  restart(): Promise<void>;
  /** Its stderr so far (for failure messages). */
  log(): string;
  /**
   * Its own view, from etcd's JSON gateway (Maintenance/Status): its member id and the leader
   * it follows (ids as decimal strings; leader '0' = none known). Rejects if it does not answer.
   */
  status(timeoutMs?: number): Promise<{ memberId: string; leader: string; raftTerm: string }>;
}

export interface EtcdCluster extends AsyncDisposable {
  readonly members: readonly EtcdMember[];
  /** Every member's client endpoint, comma-separated (what --etcd-endpoints takes). */
  readonly endpoints: string;
}

/** Children still running, killed if this test process exits without stopping them. */
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live)
    if (child.pid !== undefined)
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function exited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise((resolve) => child.once('exit', () => resolve()));
}

/** Waits for the exit up to ms; true if it exited. The timer does not outlive the wait. */
async function exitedWithin(child: ChildProcess, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([exited(child).then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function healthy(spec: MemberSpec): Promise<boolean> {
  try {
    const res = await spec.host.http(spec.clientPort, 'GET', '/health', undefined, 1_000);
    return res.status === 200 && (JSON.parse(res.body) as { health?: string }).health === 'true';
  } catch {
    return false;
  }
}

interface MemberSpec {
  readonly name: string;
  readonly host: EtcdHost;
  readonly clientPort: number;
  readonly peerPort: number;
  readonly dataDir: string;
}

function createMember(
  spec: MemberSpec,
  initialCluster: string,
  token: string,
): EtcdMember & { launch(): void; waitHealthy(): Promise<void> } {
  let child: ChildProcess | undefined;
  let stderr = '';
  const at = spec.host.address;
  const args = [
    '--name',
    spec.name,
    '--data-dir',
    spec.dataDir,
    '--listen-client-urls',
    `http://${at}:${spec.clientPort}`,
    '--advertise-client-urls',
    `http://${at}:${spec.clientPort}`,
    '--listen-peer-urls',
    `http://${at}:${spec.peerPort}`,
    '--initial-advertise-peer-urls',
    `http://${at}:${spec.peerPort}`,
    // Ignored by etcd once the data dir holds a member, so restart() can pass them again.
    '--initial-cluster',
    initialCluster,
    '--initial-cluster-state',
    'new',
    '--initial-cluster-token',
    token,
    ...TIMING,
    '--logger',
    'zap',
    '--log-level',
    'warn',
  ];

  const signal = async (sig: NodeJS.Signals) => {
    const proc = child;
    if (proc === undefined) return;
    if (proc.exitCode === null && proc.signalCode === null) process.kill(proc.pid!, sig);
    if (sig !== 'SIGKILL') {
      if (!(await exitedWithin(proc, STOP_TIMEOUT_MS))) process.kill(proc.pid!, 'SIGKILL');
    }
    await exited(proc);
    live.delete(proc);
    child = undefined;
  };

  const member = {
    name: spec.name,
    endpoint: `${at}:${spec.clientPort}`,
    get pid() {
      return child?.pid;
    },
    log: () => stderr,
    async status(timeoutMs = 2_000) {
      const res = await spec.host.http(spec.clientPort, 'POST', '/v3/maintenance/status', '{}', timeoutMs);
      if (res.status !== 200) throw new Error(`etcd ${spec.name} status: HTTP ${res.status} ${res.body}`);
      const body = JSON.parse(res.body) as { header?: { member_id?: string; raft_term?: string }; leader?: string };
      return {
        memberId: body.header?.member_id ?? '0',
        leader: body.leader ?? '0',
        raftTerm: body.header?.raft_term ?? '0',
      };
    },
    launch() {
      const proc = spec.host.launch('etcd', args, { stdio: ['ignore', 'ignore', 'pipe'] });
      child = proc;
      live.add(proc);
      proc.stderr!.on('data', (chunk) => (stderr = (stderr + chunk).slice(-20_000)));
      proc.once('exit', () => live.delete(proc));
    },
    async waitHealthy() {
      const deadline = Date.now() + HEALTHY_TIMEOUT_MS;
      while (!(await healthy(spec))) {
        const proc = child;
        if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) {
          throw new Error(
            `etcd ${spec.name} exited (${proc?.exitCode ?? proc?.signalCode}) before it was healthy:\n${stderr}`,
          );
        }
        if (Date.now() > deadline)
          throw new Error(
            `etcd ${spec.name} was not healthy on ${member.endpoint} within ${HEALTHY_TIMEOUT_MS} ms:\n${stderr}`,
          );
        await sleep(50);
      }
    },
    stop: () => signal('SIGTERM'),
    kill9: () => signal('SIGKILL'),
    async restart() {
      await signal('SIGTERM');
      member.launch();
      await member.waitHealthy();
    },
    async [Symbol.asyncDispose]() {
      // Its data is thrown away, so a graceful stop buys nothing; and a cluster's last
      // members, without quorum, can take seconds to stop on SIGTERM.
      await signal('SIGKILL');
      await rm(spec.dataDir, { recursive: true, force: true });
    },
  };
  return member;
}

async function tryStartCluster(size: number, hosts: readonly EtcdHost[] | undefined): Promise<EtcdCluster> {
  const token = `latchkey-test-${randomBytes(6).toString('hex')}`;
  const specs: MemberSpec[] = [];
  const members: ReturnType<typeof createMember>[] = [];
  const disposeAll = async () => {
    await Promise.all(members.map((m) => m[Symbol.asyncDispose]()));
    await Promise.all(specs.map((s) => rm(s.dataDir, { recursive: true, force: true })));
  };
  try {
    for (let i = 0; i < size; i++) {
      const host = hosts?.[i];
      specs.push({
        name: `m${i}`,
        host: host ?? LOOPBACK,
        // A host of its own has its own ports: etcd's standard ones.
        clientPort: host === undefined ? await freePort() : 2379,
        peerPort: host === undefined ? await freePort() : 2380,
        dataDir: await mkdtemp(join(tmpdir(), 'latchkey-etcd-')),
      });
    }
    const initialCluster = specs.map((s) => `${s.name}=http://${s.host.address}:${s.peerPort}`).join(',');
    for (const spec of specs) members.push(createMember(spec, initialCluster, token));
    for (const member of members) member.launch();
    await Promise.all(members.map((m) => m.waitHealthy()));
  } catch (err) {
    await disposeAll();
    throw err;
  }
  return {
    members,
    endpoints: members.map((m) => m.endpoint).join(','),
    [Symbol.asyncDispose]: disposeAll,
  };
}

/**
 * Starts a cluster of `size` members (`--initial-cluster`) and waits until every member is
 * healthy. A free port can be taken between the probe and etcd's bind, so a start that fails
 * is retried (twice) on new ports. `hosts`, if given, places member i on hosts[i].
 */
export async function startEtcdCluster(size = 3, options: { hosts?: readonly EtcdHost[] } = {}): Promise<EtcdCluster> {
  if (options.hosts !== undefined && options.hosts.length < size)
    throw new Error(`${size} members need ${size} hosts, got ${options.hosts.length}`);
  for (let attempt = 1; ; attempt++) {
    try {
      return await tryStartCluster(size, options.hosts);
    } catch (err) {
      if (attempt >= 3 || !/address already in use/.test(String(err))) throw err;
    }
  }
}

/** One etcd member; `endpoint` is what --etcd-endpoints takes. */
export async function startEtcd(): Promise<EtcdMember> {
  const cluster = await startEtcdCluster(1);
  const member = cluster.members[0]!;
  return Object.assign(Object.create(member) as EtcdMember, {
    [Symbol.asyncDispose]: () => cluster[Symbol.asyncDispose](),
  });
}

/** Runs `etcdctl --endpoints=<endpoints> ...args` (stdin = input) to completion, bounded; returns stdout. */
export function etcdctl(
  endpoints: string,
  args: readonly string[],
  options: { input?: string; timeoutMs?: number } = {},
): Promise<string> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  return new Promise((resolve, reject) => {
    const proc = spawn('etcdctl', [`--endpoints=${endpoints}`, ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, ETCDCTL_API: '3' },
    });
    // etcdctl may exit without reading its input; the EPIPE that leaves is not a failure.
    proc.stdin.on('error', () => {});
    proc.stdin.end(options.input ?? '');
    let out = '';
    let err = '';
    proc.stdout.on('data', (c) => (out += c));
    proc.stderr.on('data', (c) => (err += c));
    const timer = setTimeout(() => process.kill(proc.pid!, 'SIGKILL'), timeoutMs);
    proc.once('close', (code, sig) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`etcdctl ${args.join(' ')} failed (${code ?? sig}): ${err}`));
    });
  });
}

export interface EtcdctlLock extends AsyncDisposable {
  readonly pid: number;
  /** Resolves with the key once etcdctl holds the lock (bounded). */
  held(timeoutMs?: number): Promise<string>;
  /** Whether it holds the lock now. */
  holding(): boolean;
  /** SIGTERM (etcdctl then unlocks) and wait for the exit, bounded. */
  stop(): Promise<void>;
}

/**
 * `etcdctl lock <lockName>`: waits for the lock, prints its key when it holds it, and holds
 * it until it is signalled (then it unlocks) or its session expires.
 */
export function etcdctlLock(endpoints: string, lockName: string, options: { ttlS?: number } = {}): EtcdctlLock {
  const args = [`--endpoints=${endpoints}`, 'lock', lockName];
  if (options.ttlS !== undefined) args.push(`--ttl=${options.ttlS}`);
  const proc = spawn('etcdctl', args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ETCDCTL_API: '3' } });
  live.add(proc);
  proc.once('exit', () => live.delete(proc));
  let out = '';
  let err = '';
  proc.stdout.on('data', (c) => (out += c));
  proc.stderr.on('data', (c) => (err += c));
  const key = () => out.split('\n')[0]!.trim();
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) process.kill(proc.pid!, 'SIGTERM');
    if (!(await exitedWithin(proc, STOP_TIMEOUT_MS))) process.kill(proc.pid!, 'SIGKILL');
    await exited(proc);
  };
  return {
    pid: proc.pid!,
    holding: () => out.includes('\n') && proc.exitCode === null,
    async held(timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (!out.includes('\n')) {
        if (proc.exitCode !== null)
          throw new Error(`etcdctl lock ${lockName} exited (${proc.exitCode}) without the lock: ${err}`);
        if (Date.now() > deadline)
          throw new Error(`etcdctl lock ${lockName} did not get the lock within ${timeoutMs} ms: ${err}`);
        await sleep(20);
      }
      return key();
    },
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

export interface EtcdctlElect extends AsyncDisposable {
  readonly pid: number;
  /** Resolves with the key once etcdctl leads (it prints its key and proposal), bounded. */
  leads(timeoutMs?: number): Promise<string>;
  /** Whether it leads now. */
  leading(): boolean;
  /** SIGTERM (etcdctl then resigns) and wait for the exit, bounded. */
  stop(): Promise<void>;
}

/**
 * `etcdctl elect <election> <proposal>`: campaigns, prints its key and proposal once it leads,
 * and leads until it is signalled (then it resigns) or its session (60 s) expires.
 */
export function etcdctlElect(endpoints: string, election: string, proposal: string): EtcdctlElect {
  const proc = spawn('etcdctl', [`--endpoints=${endpoints}`, 'elect', election, proposal], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ETCDCTL_API: '3' },
  });
  live.add(proc);
  proc.once('exit', () => live.delete(proc));
  let out = '';
  let err = '';
  proc.stdout.on('data', (c) => (out += c));
  proc.stderr.on('data', (c) => (err += c));
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) process.kill(proc.pid!, 'SIGTERM');
    if (!(await exitedWithin(proc, STOP_TIMEOUT_MS))) process.kill(proc.pid!, 'SIGKILL');
    await exited(proc);
  };
  return {
    pid: proc.pid!,
    leading: () => out.includes('\n') && proc.exitCode === null,
    async leads(timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (!out.includes('\n')) {
        if (proc.exitCode !== null)
          throw new Error(`etcdctl elect ${election} exited (${proc.exitCode}) without leading: ${err}`);
        if (Date.now() > deadline)
          throw new Error(`etcdctl elect ${election} did not lead within ${timeoutMs} ms: ${err}`);
        await sleep(20);
      }
      return out.split('\n')[0]!.trim();
    },
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

export interface EtcdctlObserve extends AsyncDisposable {
  /** The (key, value) pairs printed so far: one per leader and per proclaimed value. */
  seen(): readonly { key: string; value: string }[];
  /** Waits until `count` pairs have been printed, bounded; returns them. */
  until(count: number, timeoutMs?: number): Promise<readonly { key: string; value: string }[]>;
  stop(): Promise<void>;
}

/** `etcdctl elect -l <election>`: prints the leader's key and value, then each change. */
export function etcdctlObserve(endpoints: string, election: string): EtcdctlObserve {
  const proc = spawn('etcdctl', [`--endpoints=${endpoints}`, 'elect', '-l', election], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ETCDCTL_API: '3' },
  });
  live.add(proc);
  proc.once('exit', () => live.delete(proc));
  let out = '';
  let err = '';
  proc.stdout.on('data', (c) => (out += c));
  proc.stderr.on('data', (c) => (err += c));
  const seen = () => {
    // Whole lines only: the last piece is a line still being written (or '').
    const lines = out.split('\n').slice(0, -1);
    const pairs: { key: string; value: string }[] = [];
    for (let i = 0; i + 1 < lines.length; i += 2) pairs.push({ key: lines[i]!, value: lines[i + 1]! });
    return pairs;
  };
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) process.kill(proc.pid!, 'SIGTERM');
    if (!(await exitedWithin(proc, STOP_TIMEOUT_MS))) process.kill(proc.pid!, 'SIGKILL');
    await exited(proc);
  };
  return {
    seen,
    async until(count, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (seen().length < count) {
        if (proc.exitCode !== null) throw new Error(`etcdctl elect -l ${election} exited (${proc.exitCode}): ${err}`);
        if (Date.now() > deadline)
          throw new Error(
            `etcdctl elect -l ${election} printed ${seen().length} of ${count} leaders within ${timeoutMs} ms:\n${out}${err}`,
          );
        await sleep(20);
      }
      return seen();
    },
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

/** How long findLeader() asks before it settles for a follower. */
const LEADER_SEARCH_MS = 5_000;

/**
 * The member etcd's `endpoint status` names as leader. An election can be under way (no
 * leader yet, a member slow to answer), so it asks again for up to LEADER_SEARCH_MS; then it
 * settles for a follower, and says so.
 */
export async function findLeader(
  cluster: EtcdCluster,
): Promise<{ member: EtcdMember; isLeader: boolean; note: string }> {
  const deadline = Date.now() + LEADER_SEARCH_MS;
  let last = '';
  while (Date.now() < deadline) {
    try {
      last = await etcdctl(cluster.endpoints, ['endpoint', 'status', '-w', 'json'], { timeoutMs: 3_000 });
      // NOTE: member ids are uint64 and lose precision as JSON numbers; compare them as strings.
      const statuses = JSON.parse(last.replace(/:\s*(\d{16,})/g, ':"$1"')) as {
        Endpoint: string;
        Status: { header: { member_id: unknown }; leader: unknown };
      }[];
      const leader = statuses.find((s) => String(s.Status.header.member_id) === String(s.Status.leader));
      const member = cluster.members.find((m) => leader?.Endpoint.replace(/^https?:\/\//, '') === m.endpoint);
      if (member !== undefined) return { member, isLeader: true, note: '' };
    } catch (err) {
      last = String(err);
    }
    await sleep(100);
  }
  return {
    member: cluster.members[0]!,
    isLeader: false,
    note: `no leader found in ${LEADER_SEARCH_MS} ms (last answer: ${last})`,
  };
}
