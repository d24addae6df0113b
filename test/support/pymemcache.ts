// A memcached client nobody here wrote: Debian's python3-pymemcache, speaking memcached's text
// protocol to one server, as a Python service sharing latchkey's memcached pool would.
import { spawn, spawnSync } from 'node:child_process';

/** Debian's python, not the pyenv one first on PATH (it lacks the Debian packages). */
const PYTHON = '/usr/bin/python3';

let available: boolean | undefined;

/** Whether pymemcache is installed; suites skip (with this reason) when not. */
export function pymemcacheMissing(): string | false {
  available ??= spawnSync(PYTHON, ['-c', 'import pymemcache'], { stdio: 'ignore' }).status === 0;
  if (available) return false;
  const reason = 'pymemcache is not installed (apt-get install python3-pymemcache)';
  if (process.env.LATCHKEY_REQUIRE_ALL_SUITES)
    throw new Error(`${reason}; LATCHKEY_REQUIRE_ALL_SUITES forbids skipping`);
  return reason;
}

/** One pymemcache call: a method of pymemcache's Client and its arguments (bytes as strings). */
export type PlainCall =
  | readonly ['get' | 'delete', string]
  | readonly ['set' | 'add', string, string]
  | readonly ['incr' | 'decr' | 'touch', string, number];

/**
 * What pymemcache answered: a bytes value as a latin1 string, null for None, a bool or int, or
 * the exception it raised (memcached's error line).
 */
export type PlainAnswer = string | number | boolean | null | { readonly error: string };

// noreply=False: wait for memcached's answer to every storage command, and report it.
const SCRIPT = `
import json, sys
from pymemcache.client.base import Client
host, port, calls = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
client = Client((host, port), connect_timeout=5, timeout=5)
out = []
for name, key, *args in calls:
    try:
        if name in ('set', 'add'):
            answer = getattr(client, name)(key, args[0].encode('latin1'), noreply=False)
        elif name in ('delete', 'touch', 'incr', 'decr'):
            answer = getattr(client, name)(key, *args, noreply=False)
        else:
            answer = client.get(key)
    except Exception as err:
        answer = {'error': repr(err)}
    out.append(answer.decode('latin1') if isinstance(answer, bytes) else answer)
print(json.dumps(out))
`;

/** Runs the calls in order on one connection to memcached at host:port; resolves with the answers. */
export function pymemcache(address: string, calls: readonly PlainCall[]): Promise<PlainAnswer[]> {
  const [host, port] = address.split(':') as [string, string];
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, ['-c', SCRIPT, host, port, JSON.stringify(calls)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(JSON.parse(stdout) as PlainAnswer[]);
      else reject(new Error(`pymemcache exited with ${code ?? signal}: ${stderr}`));
    });
  });
}
