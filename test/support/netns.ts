// Test hosts in network namespaces, for partition tests: a network of its own per test run on
// one machine, links that can be cut, and processes started inside it.
//
//   switch namespace  <id>-sw:   bridge br0, one veth end h<i> per host, and the one nftables
//                                table (bridge family) that drops traffic between hosts
//   host namespaces   <id>-<name>: eth0 (the other veth end) at 10.213.0.<10+i>/24, and lo
//
// Nothing is added to the machine's own namespace: no interface, address or route, so the
// private range exists only inside these namespaces and two runs (each with its own <id>,
// `lkp<pid>x<n>`) never see each other. A partition is a set of (source . destination)
// address pairs the bridge drops: both directions for partition(), one for cut(); heal()
// empties it. The switch drops silently, as a cut cable does: no RST, no ICMP, ARP still
// answered, so peers learn of a partition only by their own timeouts.
//
// Processes run inside a host with `ip netns exec` (which execs the command, so the child's
// pid is the process's own) and are stopped by that pid. Teardown kills what still runs in
// the namespaces and deletes them: on dispose, on the test process's exit (and SIGINT /
// SIGTERM), and, for a test process that was SIGKILLed, by the sweep at the next run's start,
// which removes only namespaces with this prefix whose owning pid is gone.
//
// The test process itself stays outside; it reaches a host's view of the network through a
// gateway (tcp-proxy.ts running inside that host, listening on unix sockets in the file
// system, which cross namespaces): `await host.reach('10.213.0.12:7000')` → 'unix:/tmp/…'.
import { execFile, spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { REPO_ROOT, type Launcher } from './spawn.js';
import { runScript, type Script } from './script.js';

/** Every namespace this harness makes is named PREFIX<pid>x<n>-…, <pid> the owning test process. */
const PREFIX = 'lkp';
const OWNED = new RegExp(`^${PREFIX}(\\d+)x\\d+-`);
/** A /24 that is used only inside these namespaces; hosts get .10 upwards. */
const SUBNET = '10.213.0';
const FIRST_HOST = 10;
const HOST_NAME = /^[a-z][a-z0-9]{0,11}$/;
/** Bound on one `ip` or `nft` command. */
const COMMAND_TIMEOUT_MS = 10_000;
/** How long teardown waits for a killed process to exit. */
const EXIT_TIMEOUT_MS = 5_000;
const PROXY_SCRIPT = join('test', 'support', 'tcp-proxy.ts');
/** Where the gateways' unix sockets go (paths must stay short: 107 bytes at most). */
const SOCKET_ROOT = '/tmp';

const INSTALL = 'apt-get install iproute2 nftables, and run as root';

let missing: string | undefined;

/** Runs a command to completion (bounded); rejects with its stderr. */
function run(command: string, args: readonly string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(command, args, { timeout: COMMAND_TIMEOUT_MS }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${command} ${args.join(' ')} failed: ${stderr.trim() || err.message}`));
      else resolve(stdout);
    });
    if (input !== undefined) child.stdin!.end(input);
  });
}

function runSync(command: string, args: readonly string[], input?: string): { ok: boolean; out: string } {
  const res = spawnSync(command, args, { timeout: COMMAND_TIMEOUT_MS, input, encoding: 'utf8' });
  return { ok: res.status === 0, out: `${res.stdout ?? ''}${res.stderr ?? ''}${res.error?.message ?? ''}` };
}

/** The switch's table: every packet whose (source, destination) is in @cut is dropped. */
const SWITCH_TABLE = `table bridge latchkey {
  set cut { type ipv4_addr . ipv4_addr; }
  chain forward { type filter hook forward priority 0; policy accept; ip saddr . ip daddr @cut drop; }
}
`;

/**
 * The one availability check of the partition suites: false when network namespaces, a
 * bridge and nftables work here (tried once, on a namespace of our own), else the reason the
 * suite skips with. With LATCHKEY_REQUIRE_ALL_SUITES set (CI) it throws instead.
 */
export function netnsMissing(): string | false {
  missing ??= probe();
  if (missing === '') return false;
  const reason = `network namespaces unavailable (${missing}): ${INSTALL}`;
  if (process.env.LATCHKEY_REQUIRE_ALL_SUITES)
    throw new Error(`${reason}; LATCHKEY_REQUIRE_ALL_SUITES forbids skipping`);
  return reason;
}

function probe(): string {
  if (process.platform !== 'linux') return `not Linux but ${process.platform}`;
  if (process.getuid?.() !== 0) return 'not root';
  for (const [command, args] of [
    ['ip', ['-V']],
    ['nft', ['--version']],
  ] as const)
    if (!runSync(command, args).ok) return `${command} is not installed`;
  sweepStale();
  const ns = `${PREFIX}${process.pid}x0-probe`;
  try {
    for (const [command, args, input] of [
      ['ip', ['netns', 'add', ns]],
      ['ip', ['-n', ns, 'link', 'add', 'br0', 'type', 'bridge']],
      ['ip', ['netns', 'exec', ns, 'nft', '-f', '-'], SWITCH_TABLE],
    ] as const) {
      const res = runSync(command, args, input);
      if (!res.ok) return `${command} ${args.join(' ')}: ${res.out.trim()}`;
    }
    return '';
  } finally {
    runSync('ip', ['netns', 'del', ns]);
  }
}

/** Whether a process runs: a zombie (dead, not yet reaped) does not. */
export function alive(pid: number): boolean {
  try {
    // "PID (comm) STATE ...": Z = zombie, X = dead.
    return !/^\d+ \(.*\) [ZX] /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

function killAllIn(ns: string): void {
  const res = runSync('ip', ['netns', 'pids', ns]);
  for (const pid of res.out.split(/\s+/).filter((p) => /^\d+$/.test(p)))
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      // gone already
    }
}

/** Namespace names, from the file system (as `ip netns list` reads them). */
function namespaces(): string[] {
  try {
    return readdirSync('/run/netns');
  } catch {
    return [];
  }
}

let swept = false;

/** sweepStaleNamespaces(), once per test process (the availability check runs it). */
function sweepStale(): void {
  if (swept) return;
  swept = true;
  sweepStaleNamespaces();
}

/**
 * Removes what a test process that died without cleaning up (SIGKILL) left behind: only
 * namespaces with our prefix whose owning pid is gone. Their processes are killed first, by
 * the pids the kernel lists in each namespace, so none lives on in a deleted namespace.
 * Returns the namespaces it removed.
 */
export function sweepStaleNamespaces(): string[] {
  const removed: string[] = [];
  for (const ns of namespaces()) {
    const owner = OWNED.exec(ns);
    if (owner === null || alive(Number(owner[1]))) continue;
    killAllIn(ns);
    runSync('ip', ['netns', 'del', ns]);
    removed.push(ns);
  }
  // The gateways' socket directories of the same dead owners.
  for (const dir of readdirSync(SOCKET_ROOT)) {
    const owner = OWNED.exec(dir);
    if (owner !== null && !alive(Number(owner[1]))) rmSync(join(SOCKET_ROOT, dir), { recursive: true, force: true });
  }
  return removed;
}

/** The namespaces of a network (by its id), as the kernel lists them now. */
export const namespacesOf = (id: string): string[] => namespaces().filter((ns) => ns.startsWith(`${id}-`));

export interface Host {
  readonly name: string;
  /** Its network namespace. */
  readonly ns: string;
  /** Its address on the test network. */
  readonly address: string;
  /** Starts a process inside the host (`ip netns exec`); stopped at teardown if still running. */
  readonly launch: Launcher;
  /**
   * A unix socket path ('unix:/…', what grpc-js takes as a target) that connects, from this
   * host, to `target` (host:port): the test process talks from here through it.
   */
  reach(target: string): Promise<string>;
  /** Delays the bytes of the forward to `target` made by reach() (upMs: towards target). */
  delayReach(target: string, upMs: number, downMs: number): Promise<void>;
  /** A TCP proxy of its own inside the host (e.g. in front of a server, to delay its traffic). */
  proxy(): Promise<TcpProxy>;
}

export interface TcpProxy {
  readonly pid: number;
  /** Listens on `listen` (host:port, or a unix socket path) and forwards each connection to `target`. */
  forward(id: string, listen: string, target: string, delay?: { upMs: number; downMs: number }): Promise<void>;
  /** Changes a forward's delays (upMs: towards the target); bytes already held keep theirs. */
  delay(id: string, upMs: number, downMs: number): Promise<void>;
  /** Stops listening and resets the forward's connections. */
  close(id: string): Promise<void>;
}

export interface Network extends AsyncDisposable {
  readonly id: string;
  readonly hosts: readonly Host[];
  host(name: string): Host;
  /** Drops every packet between each host of `side` and each of `other`, both ways. */
  partition(side: readonly string[], other: readonly string[]): Promise<void>;
  /** Drops the packets from each host of `from` to each of `to`, one way: the other way passes. */
  cut(from: readonly string[], to: readonly string[]): Promise<void>;
  /** Drops nothing any more. */
  heal(): Promise<void>;
  /** The directed pairs dropped now, "a>b", for messages. */
  cuts(): readonly string[];
}

/** Networks not yet torn down: the exit handler removes them synchronously. */
const open = new Set<{ teardownSync(): void }>();
let handlersInstalled = false;

function installExitHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  const teardownAll = () => {
    for (const network of [...open]) network.teardownSync();
  };
  process.once('exit', teardownAll);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    // NOTE: a handler replaces the default action (exit), so exit ourselves, after tearing
    // down, with the status the signal would have given.
    process.once(signal, () => {
      teardownAll();
      process.exit(128 + (signal === 'SIGINT' ? 2 : 15));
    });
  }
}

let networks = 0;

/**
 * Builds a network with one host per name (lowercase letters and digits, at most 12), each
 * in its own namespace on one bridge. Dispose it (await using) to tear it down.
 */
export async function createNetwork(names: readonly string[]): Promise<Network> {
  const reason = netnsMissing();
  if (reason !== false) throw new Error(reason);
  for (const name of names)
    if (!HOST_NAME.test(name) || name === 'sw') throw new Error(`bad host name ${JSON.stringify(name)}`);
  if (new Set(names).size !== names.length) throw new Error(`host names repeat: ${names.join(', ')}`);
  if (names.length > 200) throw new Error('at most 200 hosts');
  installExitHandlers();

  const id = `${PREFIX}${process.pid}x${++networks}`;
  const sw = `${id}-sw`;
  // Unix socket paths are limited to 107 bytes: a short directory, named by its owner for the sweep.
  const socketDir = mkdtempSync(`${SOCKET_ROOT}/${id}-`);
  const children = new Set<ChildProcess>();
  const made: string[] = [];
  const cut = new Set<string>();
  const addressOf = new Map<string, string>();
  let torn = false;

  const teardownSync = () => {
    if (torn) return;
    torn = true;
    open.delete(network);
    for (const child of children)
      if (child.exitCode === null && child.signalCode === null && child.pid !== undefined)
        try {
          process.kill(child.pid, 'SIGKILL');
        } catch {
          // gone already
        }
    for (const ns of made) killAllIn(ns);
    for (const ns of made.reverse()) runSync('ip', ['netns', 'del', ns]);
    rmSync(socketDir, { recursive: true, force: true });
  };

  const teardown = async () => {
    if (torn) return;
    const running = [...children].filter((c) => c.exitCode === null && c.signalCode === null);
    for (const child of running)
      try {
        process.kill(child.pid!, 'SIGKILL');
      } catch {
        // gone already
      }
    await Promise.all(
      running.map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            const timer = setTimeout(resolve, EXIT_TIMEOUT_MS);
            child.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
          }),
      ),
    );
    teardownSync();
  };

  const launchIn =
    (ns: string): Launcher =>
    (command, args, options: SpawnOptions) => {
      const child = spawn('ip', ['netns', 'exec', ns, command, ...args], options);
      children.add(child);
      child.once('exit', () => children.delete(child));
      return child;
    };

  const nft = (commands: string) => run('ip', ['netns', 'exec', sw, 'nft', '-f', '-'], commands);

  const hosts: Host[] = [];
  const network = {
    id,
    hosts,
    teardownSync,
    host(name: string): Host {
      const host = hosts.find((h) => h.name === name);
      if (host === undefined) throw new Error(`no host ${name} (hosts: ${hosts.map((h) => h.name).join(', ')})`);
      return host;
    },
    async partition(side: readonly string[], other: readonly string[]) {
      await network.cut(side, other);
      await network.cut(other, side);
    },
    async cut(from: readonly string[], to: readonly string[]) {
      const pairs: string[] = [];
      for (const a of from)
        for (const b of to) {
          if (a === b) continue;
          pairs.push(`${address(a)} . ${address(b)}`);
          cut.add(`${a}>${b}`);
        }
      if (pairs.length > 0) await nft(`add element bridge latchkey cut { ${pairs.join(', ')} }\n`);
    },
    async heal() {
      cut.clear();
      await nft('flush set bridge latchkey cut\n');
    },
    cuts: () => [...cut],
    [Symbol.asyncDispose]: teardown,
  };
  const address = (name: string) => {
    const found = addressOf.get(name);
    if (found === undefined) throw new Error(`no host ${name}`);
    return found;
  };

  open.add(network);
  try {
    made.push(sw);
    await run('ip', ['netns', 'add', sw]);
    await run('ip', ['-n', sw, 'link', 'add', 'br0', 'type', 'bridge']);
    await run('ip', ['-n', sw, 'link', 'set', 'br0', 'up']);
    await nft(SWITCH_TABLE);
    for (const [i, name] of names.entries()) {
      const ns = `${id}-${name}`;
      const ip = `${SUBNET}.${FIRST_HOST + i}`;
      made.push(ns);
      await run('ip', ['netns', 'add', ns]);
      // Both veth ends are made where they live, so nothing appears in the machine's namespace.
      await run('ip', ['-n', sw, 'link', 'add', `h${i}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
      await run('ip', ['-n', sw, 'link', 'set', `h${i}`, 'master', 'br0', 'up']);
      await run('ip', ['-n', ns, 'addr', 'add', `${ip}/24`, 'dev', 'eth0']);
      await run('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
      await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      addressOf.set(name, ip);
      hosts.push(createHost(name, ns, ip, launchIn(ns), socketDir));
    }
  } catch (err) {
    await teardown();
    throw err;
  }
  return network;
}

function createHost(name: string, ns: string, address: string, launch: Launcher, socketDir: string): Host {
  let gateway: Promise<TcpProxy> | undefined;
  const reached = new Map<string, Promise<string>>();
  let sockets = 0;
  const host: Host = {
    name,
    ns,
    address,
    launch,
    proxy: () => startProxy(launch),
    reach(target) {
      let path = reached.get(target);
      if (path === undefined) {
        const socket = join(socketDir, `${name}-${++sockets}.sock`);
        gateway ??= host.proxy();
        path = gateway.then(async (proxy) => {
          await proxy.forward(target, socket, target);
          return `unix:${socket}`;
        });
        reached.set(target, path);
      }
      return path;
    },
    async delayReach(target, upMs, downMs) {
      await host.reach(target);
      await (await gateway!).delay(target, upMs, downMs);
    },
  };
  return host;
}

/** Starts tcp-proxy.ts where `launch` runs it and waits until it takes commands. */
async function startProxy(launch: Launcher): Promise<TcpProxy> {
  const script: Script = runScript(PROXY_SCRIPT, [], (command, args, options) =>
    launch(command, args, { ...options, cwd: REPO_ROOT }),
  );
  await script.waitFor((m) => m.ready === true, 'the proxy to start');
  let sent = 1;
  // One command at a time: its answer is the next line.
  let chain = Promise.resolve();
  const command = (body: object) => {
    const result = chain.then(async () => {
      const index = sent++;
      script.send(JSON.stringify(body));
      const answer = await script.waitFor((m) => m === script.messages()[index], 'the proxy to answer', 10_000);
      if (typeof answer.error === 'string') throw new Error(`proxy: ${answer.error}`);
    });
    chain = result.catch(() => {});
    return result;
  };
  return {
    pid: script.pid,
    forward: (id, listen, target, delay) =>
      command({ op: 'listen', id, listen, target, upMs: delay?.upMs ?? 0, downMs: delay?.downMs ?? 0 }),
    delay: (id, upMs, downMs) => command({ op: 'delay', id, upMs, downMs }),
    close: (id) => command({ op: 'close', id }),
  };
}

/**
 * One HTTP request through a unix socket that reach() made (what etcd's /health and its JSON
 * gateway answer); bounded by timeoutMs.
 */
export function httpVia(
  socket: string,
  method: 'GET' | 'POST',
  path: string,
  body: string | undefined,
  timeoutMs: number,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { socketPath: socket.replace(/^unix:/, ''), method, path, headers: { host: 'localhost' }, timeout: timeoutMs },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer to ${method} ${path} within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}
