// The standard network of the partition scenarios (test/partitions/): on hosts of their own
// (netns.ts), etcd members e0.. , latchkey servers la, lb, ..., memcached mc, client hosts
// c1, ..., and an observer host `obs` that no scenario partitions (the test's own view of etcd:
// health, leader). What a scenario needs is one call away:
//
//   await using world = await startWorld({ etcd: 3, servers: ['a', 'b'], clients: ['c1'] });
//   const a = await world.endpoint('a', 'c1');   // server a's stubs, as host c1 reaches them
//   await world.net.partition(['la'], world.etcdHosts);
//
// Server `x` runs on host `lx`. Its etcd traffic goes through a proxy inside its own host
// (world.etcdProxy(x)), which passes it unchanged until a scenario delays it; partitions
// apply to it as to any traffic of that host. memcached listens on mc's loopback behind a
// proxy on mc's address, so a partition can land while writes are held on the way in.
//
// Later scenarios (lock sessions, elections) add client processes on client hosts, started
// with runScript(script, args, world.net.host(name).launch) and recording their operations
// as JSON lines (history.ts opToJson, on the clock this process shares), and their own
// workloads and checker rules; the network, the servers and the histories stay as they are
// (session-client.ts, election-client.ts).
import * as grpc from '@grpc/grpc-js';
import { connect } from 'node:net';
import type { CacheClient, LocksClient } from '../../client/common/index.js';
import { loadProto } from '../../src/proto.js';
import { startEtcdCluster, type EtcdCluster, type EtcdHost, type EtcdMember } from './etcd.js';
import { createNetwork, httpVia, type Host, type Network, type TcpProxy } from './netns.js';
import { spawnServer, STARTUP_TIMEOUT_MS, type SpawnedServer } from './spawn.js';
import type { Endpoint } from './workloads.js';

const LATCHKEY_PORT = 7000;
const MEMCACHED_PORT = 11211;
/** memcached itself, on mc's loopback, behind the proxy on mc's address. */
const MEMCACHED_INNER_PORT = 11212;
/** Where a server's etcd proxy listens for member i, on its host's loopback. */
const ETCD_PROXY_PORT = 23790;

const proto = loadProto();

export interface WorldOptions {
  /** etcd members (0: no etcd). */
  readonly etcd: number;
  /** Latchkey server names; server x runs on host lx. */
  readonly servers: readonly string[];
  /** Client host names. */
  readonly clients: readonly string[];
  readonly memcached?: boolean;
  /** Extra `latchkey serve` arguments (after the world's own). */
  readonly serverArgs?: readonly string[];
  /** The default lock backend of the servers: etcd when there is etcd, else memory. */
  readonly backend?: string;
}

export interface World extends AsyncDisposable {
  readonly net: Network;
  readonly etcd: EtcdCluster | undefined;
  /** The etcd members' host names (e0, e1, ...). */
  readonly etcdHosts: readonly string[];
  readonly servers: ReadonlyMap<string, SpawnedServer>;
  /** memcached's address as the servers reach it (mc's proxy), when started. */
  readonly memcached: string | undefined;
  /** memcached itself, on mc's loopback: the proxy's target. */
  readonly memcachedInner: string | undefined;
  /** The proxy in front of memcached, to delay its traffic. */
  readonly memcachedProxy: TcpProxy | undefined;
  /** Server x's stubs as client host `from` reaches them (cached per pair). */
  endpoint(server: string, from: string): Promise<Endpoint>;
  /** The proxy that carries server x's etcd traffic; forward ids are "e0", "e1", .... */
  etcdProxy(server: string): TcpProxy;
  /** The member that etcd's members agree leads, asked through obs; undefined within timeoutMs: none. */
  etcdLeader(timeoutMs?: number): Promise<EtcdMember | undefined>;
  /** The host a member runs on. */
  hostOf(member: EtcdMember): string;
}

/** Channel options: a client finds a server again at once after a partition heals. */
const CHANNEL: grpc.ChannelOptions = {
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 500,
};

/** Waits until memcached answers `version` through `socket` (bounded). */
async function memcachedUp(socket: string, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(socket.replace(/^unix:/, ''));
      const timer = setTimeout(() => (s.destroy(), resolve(false)), 1_000);
      s.on('data', (d) => {
        clearTimeout(timer);
        s.destroy();
        resolve(d.toString().startsWith('VERSION'));
      });
      s.on('error', () => (clearTimeout(timer), resolve(false)));
      s.write('version\r\n');
    });
    if (ok) return;
    if (performance.now() > deadline) throw new Error(`memcached did not answer within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export async function startWorld(options: WorldOptions): Promise<World> {
  const etcdHosts = Array.from({ length: options.etcd }, (_, i) => `e${i}`);
  const serverHosts = options.servers.map((s) => `l${s}`);
  const names = [...etcdHosts, ...serverHosts, ...(options.memcached ? ['mc'] : []), ...options.clients, 'obs'];
  const net = await createNetwork(names);
  const clients: grpc.Client[] = [];
  const servers = new Map<string, SpawnedServer>();
  const proxies = new Map<string, TcpProxy>();
  let etcd: EtcdCluster | undefined;
  const dispose = async () => {
    for (const client of clients) client.close();
    await Promise.all([...servers.values()].map((s) => s.stop('SIGKILL').catch(() => {})));
    await etcd?.[Symbol.asyncDispose]();
    await net[Symbol.asyncDispose]();
  };
  try {
    const obs = net.host('obs');
    if (options.etcd > 0) {
      const hosts: EtcdHost[] = etcdHosts.map((name) => {
        const host = net.host(name);
        return {
          address: host.address,
          launch: host.launch,
          http: async (port, method, path, body, timeoutMs) =>
            httpVia(await obs.reach(`${host.address}:${port}`), method, path, body, timeoutMs),
        };
      });
      etcd = await startEtcdCluster(options.etcd, { hosts });
    }

    let memcached: string | undefined;
    let memcachedProxy: TcpProxy | undefined;
    if (options.memcached) {
      const mc = net.host('mc');
      const args = ['-l', '127.0.0.1', '-p', String(MEMCACHED_INNER_PORT), '-U', '0', '-m', '64', '-t', '1'];
      if (process.getuid?.() === 0) args.push('-u', 'root');
      mc.launch('memcached', args, { stdio: 'ignore' });
      memcachedProxy = await mc.proxy();
      memcached = `${mc.address}:${MEMCACHED_PORT}`;
      await memcachedProxy.forward('memcached', memcached, `127.0.0.1:${MEMCACHED_INNER_PORT}`);
      await memcachedUp(await obs.reach(memcached), 10_000);
    }

    await Promise.all(
      options.servers.map(async (name) => {
        const host = net.host(`l${name}`);
        // A private network of the test's own: plaintext is what the scenarios are about.
        const args = ['--listen', `${host.address}:${LATCHKEY_PORT}`, '--insecure'];
        if (etcd !== undefined) {
          const proxy = await host.proxy();
          proxies.set(name, proxy);
          const local: string[] = [];
          for (const [i, member] of etcd.members.entries()) {
            const at = `127.0.0.1:${ETCD_PROXY_PORT + i}`;
            await proxy.forward(`e${i}`, at, member.endpoint);
            local.push(at);
          }
          args.push('--etcd-endpoints', local.join(','), '--etcd-prefix', `partitions-${net.id}/`);
        }
        args.push('--backend', options.backend ?? (etcd !== undefined ? 'etcd' : 'memory'));
        if (memcached !== undefined) args.push('--memcached', memcached);
        args.push(...(options.serverArgs ?? []));
        servers.set(name, await spawnServer(args, {}, STARTUP_TIMEOUT_MS, host.launch));
      }),
    );

    const endpoints = new Map<string, Promise<Endpoint>>();
    const world: World = {
      net,
      etcd,
      etcdHosts,
      servers,
      memcached,
      memcachedInner: memcached === undefined ? undefined : `127.0.0.1:${MEMCACHED_INNER_PORT}`,
      memcachedProxy,
      endpoint(server, from) {
        const key = `${server}@${from}`;
        let found = endpoints.get(key);
        if (found === undefined) {
          const address = servers.get(server)?.address;
          if (address === undefined) throw new Error(`no server ${server}`);
          found = net
            .host(from)
            .reach(address)
            .then((target) => {
              const locks = new proto.latchkey.v1.Locks(
                target,
                grpc.credentials.createInsecure(),
                CHANNEL,
              ) as LocksClient;
              const cache = new proto.latchkey.v1.Cache(
                target,
                grpc.credentials.createInsecure(),
                CHANNEL,
              ) as CacheClient;
              clients.push(locks, cache);
              return { name: server, locks, cache };
            });
          endpoints.set(key, found);
        }
        return found;
      },
      etcdProxy(server) {
        const proxy = proxies.get(server);
        if (proxy === undefined) throw new Error(`server ${server} has no etcd proxy`);
        return proxy;
      },
      async etcdLeader(timeoutMs = 5_000) {
        if (etcd === undefined) return undefined;
        const deadline = performance.now() + timeoutMs;
        while (performance.now() < deadline) {
          const statuses = await Promise.all(etcd.members.map((m) => m.status(1_000).catch(() => undefined)));
          // The leader: the member a majority of members name, and which names itself.
          for (const [i, s] of statuses.entries()) {
            if (s === undefined || s.leader !== s.memberId) continue;
            const followers = statuses.filter((o) => o?.leader === s.memberId).length;
            if (followers * 2 > etcd.members.length) return etcd.members[i];
          }
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        return undefined;
      },
      hostOf(member) {
        const i = etcd?.members.indexOf(member) ?? -1;
        if (i < 0) throw new Error(`not a member of this world: ${member.name}`);
        return etcdHosts[i]!;
      },
      [Symbol.asyncDispose]: dispose,
    };
    return world;
  } catch (err) {
    await dispose();
    throw err;
  }
}

export type { Host };
