// A libmemcached client from outside the project: Debian's python3-pylibmc, driven by
// /usr/bin/python3 (not the python3 first on PATH, which may lack it). One child process per
// call, JSON in on stdin and out on stdout, killed by its pid if it outlives its bound.
import { spawn, spawnSync } from 'node:child_process';

const PYTHON = '/usr/bin/python3';

let available: boolean | undefined;

/** Whether pylibmc can be imported; suites skip (with this reason) when not. */
export function pylibmcMissing(): string | false {
  available ??= spawnSync(PYTHON, ['-c', 'import pylibmc'], { stdio: 'ignore' }).status === 0;
  if (available) return false;
  const reason = `pylibmc is not installed for ${PYTHON} (apt-get install python3-pylibmc)`;
  if (process.env.LATCHKEY_REQUIRE_ALL_SUITES)
    throw new Error(`${reason}; LATCHKEY_REQUIRE_ALL_SUITES forbids skipping`);
  return reason;
}

export interface PylibmcRequest {
  /** "host:port" strings, as pylibmc.Client takes them. */
  readonly servers: readonly string[];
  /** pylibmc behaviors, e.g. { ketama: true }. */
  readonly behaviors: Readonly<Record<string, unknown>>;
  /** Keys to ask `client.hash` for: the index of the server libmemcached picks. */
  readonly hash?: readonly string[];
  /** Keys to read with `client.get`. */
  readonly get?: readonly string[];
  /** Items to write with `client.set` (values as UTF-8 text, flags 0), before the gets. */
  readonly set?: Readonly<Record<string, string>>;
}

export interface PylibmcResult {
  readonly hash: Record<string, number>;
  /** The value read, as UTF-8 text, or null for a miss. */
  readonly get: Record<string, string | null>;
}

const SCRIPT = `
import json, sys, pylibmc
req = json.load(sys.stdin)
client = pylibmc.Client(req["servers"], behaviors=req["behaviors"])
out = {"hash": {}, "get": {}}
for key in req.get("hash", []):
    out["hash"][key] = client.hash(key)
for key, value in req.get("set", {}).items():
    if not client.set(key, value.encode()):
        raise SystemExit("pylibmc set failed for " + key)
for key in req.get("get", []):
    value = client.get(key)
    out["get"][key] = None if value is None else value.decode()
json.dump(out, sys.stdout)
`;

export function pylibmc(request: PylibmcRequest, timeoutMs = 20_000): Promise<PylibmcResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, ['-c', SCRIPT], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => {
      if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
      reject(new Error(`pylibmc did not finish within ${timeoutMs} ms: ${stderr}`));
    }, timeoutMs);
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('error', (err) => (clearTimeout(timer), reject(err)));
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(JSON.parse(stdout) as PylibmcResult);
      else reject(new Error(`pylibmc exited with ${code}: ${stderr}`));
    });
    child.stdin.end(JSON.stringify(request));
  });
}
