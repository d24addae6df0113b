// A libmemcached client from outside the project: Debian's python3-pylibmc (and, for what
// pylibmc does not wrap, the libmemcached it runs on, through ctypes), driven by
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
  /**
   * [group key, key] pairs to read with libmemcached's memcached_get_by_key, which looks on
   * the group key's server (pylibmc has no such call: it goes through ctypes to the same
   * libmemcached, with MEMCACHED_BEHAVIOR_KETAMA when `behaviors.ketama`).
   */
  readonly getByKey?: readonly (readonly [groupKey: string, key: string])[];
}

export interface PylibmcResult {
  readonly hash: Record<string, number>;
  /** The value read, as UTF-8 text, or null for a miss. */
  readonly get: Record<string, string | null>;
  /** By key: the item memcached_get_by_key read (value in base64), or null for a miss. */
  readonly getByKey: Record<string, { flags: number; value: string } | null>;
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
out["getByKey"] = {}
if req.get("getByKey"):
    import base64, ctypes
    lib = ctypes.CDLL("libmemcached.so.11")
    libc = ctypes.CDLL(None)
    lib.memcached_create.restype = ctypes.c_void_p
    lib.memcached_create.argtypes = [ctypes.c_void_p]
    lib.memcached_free.argtypes = [ctypes.c_void_p]
    lib.memcached_server_add.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint]
    lib.memcached_behavior_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint64]
    lib.memcached_strerror.restype = ctypes.c_char_p
    lib.memcached_strerror.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.memcached_get_by_key.restype = ctypes.c_void_p
    lib.memcached_get_by_key.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t,
        ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t),
        ctypes.POINTER(ctypes.c_uint32), ctypes.POINTER(ctypes.c_int)]
    libc.free.argtypes = [ctypes.c_void_p]
    MEMCACHED_BEHAVIOR_KETAMA, MEMCACHED_SUCCESS, MEMCACHED_NOTFOUND = 3, 0, 16
    mc = lib.memcached_create(None)
    for server in req["servers"]:
        host, port = server.rsplit(":", 1)
        lib.memcached_server_add(mc, host.encode(), int(port))
    if req["behaviors"].get("ketama"):
        lib.memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_KETAMA, 1)
    for group, key in req["getByKey"]:
        g, k = group.encode(), key.encode()
        length, flags, rc = ctypes.c_size_t(), ctypes.c_uint32(), ctypes.c_int()
        value = lib.memcached_get_by_key(mc, g, len(g), k, len(k), ctypes.byref(length),
            ctypes.byref(flags), ctypes.byref(rc))
        if rc.value == MEMCACHED_NOTFOUND:
            out["getByKey"][key] = None
        elif rc.value != MEMCACHED_SUCCESS:
            raise SystemExit("memcached_get_by_key: " + lib.memcached_strerror(mc, rc.value).decode())
        else:
            data = ctypes.string_at(value, length.value) if value else b""
            libc.free(value)
            out["getByKey"][key] = {"flags": flags.value, "value": base64.b64encode(data).decode()}
    lib.memcached_free(mc)
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
