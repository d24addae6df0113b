// Real gRPC C-core clients for tests: Debian's python3-grpcio, with stubs generated from
// proto/ by python3-grpc-tools into a scratch directory. Children run bounded (SIGKILL on
// timeout, by their own pid).
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from './spawn.js';

/**
 * NOTE: Debian's interpreter, not the first python3 on PATH: a pyenv python there has no
 * grpcio, and the Debian packages are what .ci/run installs.
 */
export const PYTHON = '/usr/bin/python3';

let available: boolean | undefined;

/** Whether python3-grpcio and python3-grpc-tools are installed; suites skip (with this reason) when not. */
export function pythonGrpcMissing(): string | false {
  available ??=
    spawnSync(PYTHON, ['-c', 'import grpc, grpc_tools.protoc'], { stdio: 'ignore', timeout: 30_000 }).status === 0;
  if (available) return false;
  const reason = `${PYTHON} lacks grpcio or grpc_tools (apt-get install python3-grpcio python3-grpc-tools)`;
  if (process.env.LATCHKEY_REQUIRE_ALL_SUITES)
    throw new Error(`${reason}; LATCHKEY_REQUIRE_ALL_SUITES forbids skipping`);
  return reason;
}

export interface PythonStubs extends Disposable {
  /** The directory to put on PYTHONPATH: it holds latchkey/v1/{locks,cache}_pb2{,_grpc}.py. */
  readonly dir: string;
}

/** Generates the Python messages and stubs of every .proto under proto/latchkey/v1 into a scratch directory. */
export function pythonStubs(): PythonStubs {
  const dir = mkdtempSync(join(tmpdir(), 'latchkey-py-'));
  const protos = readdirSync(join(REPO_ROOT, 'proto/latchkey/v1'))
    .filter((f) => f.endsWith('.proto'))
    .map((f) => `proto/latchkey/v1/${f}`);
  const result = spawnSync(
    PYTHON,
    ['-m', 'grpc_tools.protoc', '-I', 'proto', `--python_out=${dir}`, `--grpc_python_out=${dir}`, ...protos],
    { cwd: REPO_ROOT, encoding: 'utf8', timeout: 60_000 },
  );
  if (result.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`grpc_tools.protoc failed (${result.status ?? result.signal}): ${result.stderr}`);
  }
  return { dir, [Symbol.dispose]: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface PythonRun {
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `python3 file ...args` with the stubs importable; rejects (with its output) on a non-zero exit or a timeout. */
export function runPython(
  stubs: PythonStubs,
  file: string,
  args: readonly string[] = [],
  options: { cwd?: string; timeoutMs?: number } = {},
): Promise<PythonRun> {
  return new Promise((resolve, reject) => {
    execFile(
      PYTHON,
      [file, ...args],
      {
        cwd: options.cwd ?? stubs.dir,
        env: { ...process.env, PYTHONPATH: stubs.dir, PYTHONDONTWRITEBYTECODE: '1' },
        timeout: options.timeoutMs ?? 60_000,
        killSignal: 'SIGKILL',
      },
      (err, stdout, stderr) => {
        if (err)
          reject(new Error(`${PYTHON} ${file} failed: ${err.message}\n--- stdout:\n${stdout}\n--- stderr:\n${stderr}`));
        else resolve({ stdout, stderr });
      },
    );
  });
}
