// The real buf CLI (npm @bufbuild/buf ships it), as a third-party gRPC client: `buf curl`
// learns every schema from server reflection and builds it with protobuf-go's protodesc,
// which refuses descriptors grpcurl refuses too. Runs the platform binary itself, not the
// package's node wrapper, so a bounded run ends the process that did the work.
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { arch, platform } from 'node:os';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);

const PLATFORM_PACKAGES: Record<string, string> = {
  'linux x64': '@bufbuild/buf-linux-x64',
  'linux arm64': '@bufbuild/buf-linux-aarch64',
  'darwin x64': '@bufbuild/buf-darwin-x64',
  'darwin arm64': '@bufbuild/buf-darwin-arm64',
};

/** The buf binary installed with @bufbuild/buf for this machine. */
export const BUF = (() => {
  const pkg = PLATFORM_PACKAGES[`${platform()} ${arch()}`];
  if (pkg === undefined) throw new Error(`@bufbuild/buf: no binary package for ${platform()} ${arch()}`);
  return require.resolve(`${pkg}/bin/buf`);
})();

/** The reflection protocol definitions @grpc/reflection ships (buf curl takes them as --schema). */
export const REFLECTION_PROTO_V1 = join(
  dirname(require.resolve('@grpc/reflection/package.json')),
  'build',
  'proto',
  'grpc',
  'reflection',
  'v1',
  'reflection.proto',
);

export interface BufResult {
  /** buf curl: 0, or a gRPC status code shifted left by 3 (ABORTED = 80); below 8: buf itself failed. */
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** How long any one buf run may take before it is stopped and the test fails. */
export const BUF_TIMEOUT_MS = 30_000;

/** Runs buf with `args` (and `stdin`, if given); never rejects for a non-zero exit. */
export function buf(args: readonly string[], options: { stdin?: string; cwd?: string } = {}): Promise<BufResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      BUF,
      [...args],
      {
        timeout: BUF_TIMEOUT_MS,
        cwd: options.cwd,
        maxBuffer: 64 * 1024 * 1024,
        env: { ...process.env, NO_COLOR: '1' },
      },
      (err, stdout, stderr) => {
        if (err !== null && typeof err.code !== 'number')
          return reject(new Error(`buf ${args.join(' ')}: ${err.message}\n${stderr}`));
        resolve({ code: err === null ? 0 : (err.code as number), stdout, stderr });
      },
    );
    child.stdin?.end(options.stdin ?? '');
  });
}

/** The gRPC status code a `buf curl` exit code stands for, or undefined when buf itself failed. */
export function rpcStatus(result: BufResult): number | undefined {
  if (result.code === 0) return 0;
  return result.code >= 8 && result.code % 8 === 0 ? result.code / 8 : undefined;
}

/** `buf curl` over plaintext HTTP/2 with the gRPC protocol, the schema from server reflection. */
export function bufCurl(
  address: string,
  path: string,
  args: readonly string[] = [],
  options: { stdin?: string; cwd?: string } = {},
): Promise<BufResult> {
  return buf(['curl', '--protocol', 'grpc', '--http2-prior-knowledge', ...args, `http://${address}${path}`], options);
}
