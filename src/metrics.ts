// Prometheus metrics: one registry per server (several servers in one process never share a
// series), the latchkey_* metrics, meters bound once per label combination (a Cell, read
// at scrape time: see CellMetric), and the GET /metrics endpoint on node:http. The only file that imports prom-client. The README's
// "Metrics" section lists every series; keep the two in step.
//
// NOTE: no label ever carries a lock name, a cache key or an owner: those are unbounded
// (a series per key would exhaust Prometheus) and some are confidential. Labels take only
// values from small fixed sets: backend and store names, outcomes, error classes, methods.
import { createServer as createHttpServer } from 'node:http';
import { status } from '@grpc/grpc-js';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { BackendUnavailableError, LatchkeyError, reasonOf } from './errors.js';
import type { Logger } from './log.js';

/** How a wait for a lock ended: granted, not granted in time, caller or server gone, anything else. */
export type WaitOutcome = 'granted' | 'timeout' | 'cancelled' | 'error';
export type ReleaseOutcome = 'released' | 'not_holder' | 'expired';
/** How a campaign ended: its candidate led, its wait ran out, its session ended, its caller (or the server) left, anything else. */
export type CampaignOutcome = 'elected' | 'not_elected' | 'expired' | 'cancelled' | 'error';
export type ResignOutcome = 'resigned' | 'not_leader';
export type CacheOp = 'get' | 'set' | 'cas' | 'add' | 'delete' | 'incr' | 'touch';
export type CacheOutcome = 'STORED' | 'EXISTS' | 'NOT_FOUND' | 'DELETED' | 'TOUCHED' | 'hit' | 'miss' | 'error';

type HistogramChild = ReturnType<Histogram['labels']>;

/** Waits last from a millisecond (a free lock) to hours (wait_ms up to --max-wait-ms). */
const WAIT_BUCKETS_S = [0.001, 0.005, 0.025, 0.1, 0.5, 1, 2.5, 10, 30, 60, 300, 1800];

/**
 * The error class a backend or store failure counts under (its wire reason, as OpError.reason
 * names it, so unary calls and batches count alike), or undefined when the error is an
 * answer rather than a failure (busy, not holder, expired, fenced out, bad request, ...).
 * Failures: the backend is unreachable (BackendUnavailableError) or something unexpected
 * happened (INTERNAL: counted as InternalError).
 */
export function failureClass(err: unknown): string | undefined {
  if (!(err instanceof LatchkeyError)) return 'InternalError';
  return err instanceof BackendUnavailableError || err.code === status.INTERNAL ? reasonOf(err) : undefined;
}

/** One series of a counter or gauge: the hot path adds to `value`; a scrape reads it. */
export interface Cell {
  value: number;
}

/**
 * A counter or gauge whose series are Cells, copied into prom-client only when scraped.
 * NOTE: why not prom-client's own `metric.labels(...)` children: they are not pre-bound,
 * every inc() re-hashes the label values into a string key, validates them and looks the
 * series up, several hundred ns per event. A call records 3 to 5 events, and a Pipeline
 * operation costs a few µs in all, so that was a cost one could measure. A cell is a field
 * increment.
 */
class CellMetric<L extends string> {
  readonly #cells: { labels: Partial<Record<L, string>>; cell: Cell }[] = [];
  readonly #labelNames: readonly L[];

  constructor(registry: Registry, kind: 'counter' | 'gauge', name: string, help: string, labelNames: L[]) {
    this.#labelNames = labelNames;
    const cells = this.#cells;
    if (kind === 'counter') {
      new Counter<L>({
        name,
        help,
        labelNames,
        registers: [registry],
        collect() {
          this.reset();
          for (const { labels, cell } of cells) this.inc(labels, cell.value);
        },
      });
    } else {
      new Gauge<L>({
        name,
        help,
        labelNames,
        registers: [registry],
        collect() {
          for (const { labels, cell } of cells) this.set(labels, cell.value);
        },
      });
    }
  }

  /** A new series with these label values (in labelNames order); the caller keeps it. It reads 0 until counted. */
  cell(...values: string[]): Cell {
    const labels: Partial<Record<L, string>> = {};
    this.#labelNames.forEach((name, i) => (labels[name] = values[i]));
    const cell: Cell = { value: 0 };
    this.#cells.push({ labels, cell });
    return cell;
  }
}

/** One lock backend's series. */
export class LockMeter {
  readonly #grants: Cell;
  readonly #waits: Cell;
  readonly #waitSeconds: Readonly<Record<WaitOutcome, HistogramChild>>;
  readonly #releases: Readonly<Record<ReleaseOutcome, Cell>>;
  readonly #failures: FailureMeter;
  readonly #m: Metrics;
  readonly #backend: string;
  #expiries: Cell | undefined;

  constructor(m: Metrics, backend: string) {
    this.#m = m;
    this.#backend = backend;
    this.#grants = m.lockGrants.cell(backend);
    this.#waits = m.lockWaits.cell(backend);
    // Histogram children are cached too; only calls that may wait observe one.
    const wait = (outcome: WaitOutcome) => m.lockWaitSeconds.labels(backend, outcome);
    this.#waitSeconds = {
      granted: wait('granted'),
      timeout: wait('timeout'),
      cancelled: wait('cancelled'),
      error: wait('error'),
    };
    const release = (outcome: ReleaseOutcome) => m.lockReleases.cell(backend, outcome);
    this.#releases = { released: release('released'), not_holder: release('not_holder'), expired: release('expired') };
    this.#failures = new FailureMeter(m, backend);
  }

  granted(): void {
    this.#grants.value++;
  }

  waitStarted(): void {
    this.#waits.value++;
  }

  waitEnded(outcome: WaitOutcome, seconds: number): void {
    this.#waitSeconds[outcome].observe(seconds);
  }

  /** The backend reports expiries (memory, file): it gets an expiry series, from 0. Others have none. */
  reportsExpiries(): void {
    this.#expiries ??= this.#m.lockExpiries.cell(this.#backend);
  }

  expired(): void {
    this.#expiries!.value++;
  }

  released(outcome: ReleaseOutcome): void {
    this.#releases[outcome].value++;
  }

  /** Counts err if it is a backend failure (see failureClass). */
  failed(err: unknown): void {
    this.#failures.count(failureClass(err));
  }
}

/** One lock backend's session series: sessions open now, and opened, resumed and expired. */
export class SessionMeter {
  readonly #open: Cell;
  readonly #opened: Cell;
  readonly #resumed: Cell;
  readonly #expired: Cell;

  constructor(m: Metrics, backend: string) {
    this.#open = m.sessionsOpen.cell(backend);
    this.#opened = m.sessionsOpened.cell(backend);
    this.#resumed = m.sessionsResumed.cell(backend);
    this.#expired = m.sessionsExpired.cell(backend);
  }

  opened(): void {
    this.#opened.value++;
    this.#open.value++;
  }

  /**
   * Resumed by a new stream. `adopted`: this server had no copy of the session before (an
   * etcd session opened or last served elsewhere), and follows it from now on.
   */
  resumed(adopted: boolean): void {
    this.#resumed.value++;
    if (adopted) this.#open.value++;
  }

  /** No longer followed here other than by expiring: ended cleanly, closed at shutdown, or (etcd) left to other servers. */
  ended(): void {
    this.#open.value--;
  }

  expired(): void {
    this.#expired.value++;
    this.#open.value--;
  }
}

/** One lock backend's election series: campaigns by outcome, resigns by outcome, failures. */
export class ElectionMeter {
  readonly #campaigns: Readonly<Record<CampaignOutcome, Cell>>;
  readonly #resigns: Readonly<Record<ResignOutcome, Cell>>;
  readonly #failures: FailureMeter;

  constructor(m: Metrics, backend: string) {
    const campaign = (outcome: CampaignOutcome) => m.electionCampaigns.cell(backend, outcome);
    this.#campaigns = {
      elected: campaign('elected'),
      not_elected: campaign('not_elected'),
      expired: campaign('expired'),
      cancelled: campaign('cancelled'),
      error: campaign('error'),
    };
    const resign = (outcome: ResignOutcome) => m.electionResigns.cell(backend, outcome);
    this.#resigns = { resigned: resign('resigned'), not_leader: resign('not_leader') };
    this.#failures = new FailureMeter(m, backend);
  }

  campaigned(outcome: CampaignOutcome): void {
    this.#campaigns[outcome].value++;
  }

  resigned(outcome: ResignOutcome): void {
    this.#resigns[outcome].value++;
  }

  /** Counts err if it is a backend failure (see failureClass). */
  failed(err: unknown): void {
    this.#failures.count(failureClass(err));
  }
}

/** One cache store's series. */
export class CacheMeter {
  readonly #store: string;
  readonly #m: Metrics;
  /** By op, then outcome; created on first use. */
  readonly #ops: Record<CacheOp, Partial<Record<CacheOutcome, Cell>>> = {
    get: {},
    set: {},
    cas: {},
    add: {},
    delete: {},
    incr: {},
    touch: {},
  };
  readonly #hits: Cell;
  readonly #misses: Cell;
  readonly #failures: FailureMeter;

  constructor(m: Metrics, store: string) {
    this.#m = m;
    this.#store = store;
    this.#hits = m.cacheHits.cell(store);
    this.#misses = m.cacheMisses.cell(store);
    this.#failures = new FailureMeter(m, store);
  }

  done(op: CacheOp, outcome: CacheOutcome): void {
    const byOutcome = this.#ops[op];
    (byOutcome[outcome] ??= this.#m.cacheOps.cell(this.#store, op, outcome)).value++;
    if (outcome === 'hit') this.#hits.value++;
    else if (outcome === 'miss') this.#misses.value++;
  }

  /** The operation failed with err (counted as outcome "error", and as a failure if it is one). */
  failed(op: CacheOp, err: unknown): void {
    this.done(op, 'error');
    this.#failures.count(failureClass(err));
  }
}

class FailureMeter {
  readonly #cells = new Map<string, Cell>();
  readonly #m: Metrics;
  readonly #backend: string;

  constructor(m: Metrics, backend: string) {
    this.#m = m;
    this.#backend = backend;
  }

  count(errorClass: string | undefined): void {
    if (errorClass === undefined) return;
    let cell = this.#cells.get(errorClass);
    if (cell === undefined) this.#cells.set(errorClass, (cell = this.#m.backendErrors.cell(this.#backend, errorClass)));
    cell.value++;
  }
}

/** One gRPC method's series: calls in flight, and calls answered by status code. */
export class RpcMeter {
  readonly #inflight: Cell;
  /** By status code number. */
  readonly #handled: Cell[] = [];
  readonly #m: Metrics;
  readonly #service: string;
  readonly #method: string;

  constructor(m: Metrics, service: string, method: string) {
    this.#m = m;
    this.#service = service;
    this.#method = method;
    this.#inflight = m.inflight.cell(service, method);
  }

  begin(): void {
    this.#inflight.value++;
  }

  /** The call (or stream) ended with this status code. */
  end(code: status): void {
    this.#inflight.value--;
    this.answered(code);
  }

  /** Answered without ever being in flight (a stream refused at the door). */
  answered(code: status): void {
    (this.#handled[code] ??= this.#m.rpcHandled.cell(this.#service, this.#method, status[code] ?? String(code)))
      .value++;
  }
}

export class Metrics {
  readonly registry = new Registry();
  readonly #locks = new Map<string, LockMeter>();
  readonly #stores = new Map<string, CacheMeter>();
  readonly #sessions = new Map<string, SessionMeter>();
  readonly #elections = new Map<string, ElectionMeter>();
  #processMetrics = false;

  readonly lockGrants = this.#counter(
    'latchkey_lock_grants_total',
    'Locks granted: Acquire calls answered with a lease.',
    ['backend'],
  );
  readonly lockWaits = this.#counter(
    'latchkey_lock_waits_total',
    'Acquire calls allowed to wait (wait_ms > 0) that reached the backend, counted when they start, whether or not the lock was free.',
    ['backend'],
  );
  readonly lockWaitSeconds = new Histogram({
    name: 'latchkey_lock_wait_seconds',
    help: 'How long Acquire calls with wait_ms > 0 took, by how they ended: granted, timeout (not granted in time), cancelled (caller or server gone), error.',
    labelNames: ['backend', 'outcome'],
    buckets: WAIT_BUCKETS_S,
    registers: [this.registry],
  });
  readonly lockExpiries = this.#counter(
    'latchkey_lock_lease_expiries_total',
    'Leases that ran out of TTL without a release, seen by this server (memory and file backends; etcd expires leases inside etcd, unseen).',
    ['backend'],
  );
  readonly lockReleases = this.#counter(
    'latchkey_lock_releases_total',
    'Releases by outcome: released, not_holder (refused), expired (the lease had run out). Release calls, and the release of a lease granted to a caller already gone.',
    ['backend', 'outcome'],
  );
  readonly sessionsOpen = new CellMetric(
    this.registry,
    'gauge',
    'latchkey_lock_sessions_open',
    'Lock sessions alive on this server, whether or not a stream is attached (etcd: the sessions this server follows, opened or resumed here, until they end or expire, or a TTL after its last stream for them went).',
    ['backend'],
  );
  readonly sessionsOpened = this.#counter(
    'latchkey_lock_sessions_opened_total',
    'Lock sessions opened (Locks/Session streams whose open created a session).',
    ['backend'],
  );
  readonly sessionsResumed = this.#counter(
    'latchkey_lock_sessions_resumed_total',
    'Lock sessions resumed by a new stream (open.resume_id).',
    ['backend'],
  );
  readonly sessionsExpired = this.#counter(
    'latchkey_lock_sessions_expired_total',
    'Lock sessions whose TTL ran out without a keepalive, freeing their locks (each also counts in latchkey_lock_lease_expiries_total).',
    ['backend'],
  );
  readonly electionCampaigns = this.#counter(
    'latchkey_election_campaigns_total',
    'Campaigns that reached the backend, by how they ended: elected, not_elected (wait_ms or the deadline ran out), expired (the session ended or expired first), cancelled (caller or server gone), error.',
    ['backend', 'outcome'],
  );
  readonly electionResigns = this.#counter(
    'latchkey_election_resigns_total',
    'Resigns by outcome: resigned, not_leader (refused: the leadership was no longer the current one).',
    ['backend', 'outcome'],
  );
  readonly cacheOps = this.#counter(
    'latchkey_cache_ops_total',
    'Cache operations that reached the store (unary, batch entries and Pipeline ops alike) by store, op and outcome: STORED, EXISTS, NOT_FOUND, DELETED, TOUCHED, hit, miss, error.',
    ['store', 'op', 'outcome'],
  );
  readonly cacheHits = this.#counter('latchkey_cache_hits_total', 'Cache gets that found the key.', ['store']);
  readonly cacheMisses = this.#counter(
    'latchkey_cache_misses_total',
    'Cache gets that did not find the key (absent, expired, or a fenced-delete tombstone).',
    ['store'],
  );
  readonly backendErrors = this.#counter(
    'latchkey_backend_errors_total',
    'Lock backend and cache store failures by backend or store name and error class: BackendUnavailableError (unreachable), InternalError and other INTERNAL errors (bugs).',
    ['backend', 'error_class'],
  );
  readonly inflight = new CellMetric(
    this.registry,
    'gauge',
    'latchkey_inflight_calls',
    'gRPC calls in progress on latchkey.v1.Locks, latchkey.v1.Elections and latchkey.v1.Cache, by service and method (an open Locks/Watch, Elections/Observe or Cache/Pipeline stream is one call).',
    ['service', 'method'],
  );
  readonly rpcHandled = this.#counter(
    'latchkey_rpc_handled_total',
    'gRPC calls finished, by service, method and status code name (OK, ABORTED, UNAVAILABLE, ...).',
    ['service', 'method', 'code'],
  );

  /** The meter of a lock backend (created, with its series at 0, on first use). */
  lock(backend: string): LockMeter {
    let meter = this.#locks.get(backend);
    if (meter === undefined) this.#locks.set(backend, (meter = new LockMeter(this, backend)));
    return meter;
  }

  /** The session meter of a lock backend (created, with its series at 0, on first use). */
  session(backend: string): SessionMeter {
    let meter = this.#sessions.get(backend);
    if (meter === undefined) this.#sessions.set(backend, (meter = new SessionMeter(this, backend)));
    return meter;
  }

  /** The election meter of a lock backend (created, with its series at 0, on first use). */
  election(backend: string): ElectionMeter {
    let meter = this.#elections.get(backend);
    if (meter === undefined) this.#elections.set(backend, (meter = new ElectionMeter(this, backend)));
    return meter;
  }

  /** The meter of a cache store (created, with its series at 0, on first use). */
  cache(store: string): CacheMeter {
    let meter = this.#stores.get(store);
    if (meter === undefined) this.#stores.set(store, (meter = new CacheMeter(this, store)));
    return meter;
  }

  rpc(service: string, method: string): RpcMeter {
    return new RpcMeter(this, service, method);
  }

  /**
   * Adds prom-client's default process and Node.js metrics (process_cpu_seconds_total,
   * nodejs_eventloop_lag_seconds, nodejs_heap_size_used_bytes, ...), unprefixed as usual.
   * NOTE: only for a server that serves /metrics: each call installs a GC observer and an
   * event-loop monitor that live as long as the process.
   */
  collectProcessMetrics(): void {
    if (this.#processMetrics) return;
    this.#processMetrics = true;
    collectDefaultMetrics({ register: this.registry });
  }

  /** The Prometheus text exposition of every series. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  #counter<L extends string>(name: string, help: string, labelNames: L[]): CellMetric<L> {
    return new CellMetric(this.registry, 'counter', name, help, labelNames);
  }
}

export interface MetricsEndpoint {
  /** host:port it listens on (the port picked when asked for 0). */
  readonly address: string;
  close(): Promise<void>;
}

/**
 * Serves GET /metrics on `address` (host:port; [::1]:port for IPv6) over plain HTTP.
 * Rejects with the listen error (EADDRINUSE, EACCES, ...).
 */
export function serveMetrics(metrics: Metrics, address: string, log: Logger): Promise<MetricsEndpoint> {
  const colon = address.lastIndexOf(':');
  const host = address.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
  const port = Number(address.slice(colon + 1));
  const server = createHttpServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics') {
      res
        .writeHead(404, { 'content-type': 'text/plain; charset=utf-8' })
        .end('not found: latchkey serves GET /metrics\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' }).end('use GET /metrics\n');
      return;
    }
    metrics.text().then(
      (text) =>
        res
          .writeHead(200, { 'content-type': metrics.registry.contentType })
          .end(req.method === 'HEAD' ? undefined : text),
      (err: unknown) => {
        log.error({ event: 'internal_error', err }, 'internal error: collecting metrics');
        res
          .writeHead(500, { 'content-type': 'text/plain; charset=utf-8' })
          .end('cannot collect metrics (see the server log)\n');
      },
    );
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      const bound = server.address();
      const boundPort = typeof bound === 'object' && bound !== null ? bound.port : port;
      resolve({
        address: `${address.slice(0, colon)}:${boundPort}`,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            // A scraper's keep-alive connection would hold close() open until it times out.
            server.closeAllConnections();
          }),
      });
    });
  });
}
