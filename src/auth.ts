// Bearer-token authentication and per-token name prefixes.
//
// Tokens file (--auth-tokens-file), reloaded on SIGHUP: one token per line, optionally
// followed by name prefixes that limit the token to lock names, cache keys and election names
// starting with one of them; blank lines and lines starting with # are ignored.
//
//   s3cr3t-token-for-billing-0123   billing/ invoices:
//   an-unrestricted-admin-token-4567
//
// Tokens are kept only as SHA-256 digests and are never logged: a principal is named by the
// first 8 hex digits of its digest ("token#1a2b3c4d").
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { ConfigError } from './config.js';
import { PermissionDeniedError, type Logger } from './errors.js';

export interface Principal {
  /** How logs name the token; never the token itself. */
  readonly id: string;
  /** Lock names and cache keys this token may use; empty = all. */
  readonly prefixes: readonly string[];
}

const MIN_TOKEN_LENGTH = 16;
const digest = (token: string) => createHash('sha256').update(token).digest('hex');

export function parseTokens(text: string, source: string): Map<string, Principal> {
  const tokens = new Map<string, Principal>();
  text.split('\n').forEach((raw, index) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const [token, ...prefixes] = line.split(/\s+/) as [string, ...string[]];
    if (token.length < MIN_TOKEN_LENGTH)
      throw new ConfigError(`${source} line ${index + 1}: tokens must be at least ${MIN_TOKEN_LENGTH} characters`);
    const hash = digest(token);
    tokens.set(hash, { id: `token#${hash.slice(0, 8)}`, prefixes });
  });
  if (tokens.size === 0) throw new ConfigError(`${source} holds no tokens: every call would be refused`);
  return tokens;
}

export class TokenAuth {
  readonly #path: string;
  readonly #log: Logger;
  #tokens: Map<string, Principal>;

  constructor(path: string, log: Logger) {
    this.#path = path;
    this.#log = log;
    this.#tokens = this.#read();
  }

  /** Re-reads the tokens file; a file that cannot be read or parsed keeps the old tokens. */
  reload(): void {
    try {
      this.#tokens = this.#read();
      this.#log.info(
        { event: 'auth.reload', tokens: this.#tokens.size, path: this.#path },
        `auth: reloaded ${this.#tokens.size} token(s) from ${this.#path}`,
      );
    } catch (err) {
      this.#log.warn(
        { event: 'auth.reload_failed', path: this.#path, err: (err as Error).message },
        `auth: kept the previous tokens; cannot reload ${this.#path}`,
      );
    }
  }

  /** The principal of a call's `authorization: Bearer <token>`, or undefined. */
  principalOf(metadata: grpc.Metadata): Principal | undefined {
    const header = metadata.get('authorization')[0];
    if (typeof header !== 'string' || !/^bearer /i.test(header)) return undefined;
    return this.#tokens.get(digest(header.slice(7).trim()));
  }

  /**
   * Refuses, with UNAUTHENTICATED, every call without a valid token, except on the paths
   * `isPublic` accepts (health checks; reflection when --reflection public).
   */
  interceptor(isPublic: (path: string) => boolean): grpc.ServerInterceptor {
    return (method, call) =>
      new grpc.ServerInterceptingCall(call, {
        start: (next) =>
          next({
            onReceiveMetadata: (metadata, forward) => {
              if (isPublic(method.path) || this.principalOf(metadata) !== undefined) return forward(metadata);
              const had = metadata.get('authorization').length > 0;
              call.sendStatus({
                code: grpc.status.UNAUTHENTICATED,
                details: had
                  ? 'the bearer token is not valid on this server'
                  : 'send "authorization: Bearer <token>" metadata (this server requires a token)',
                metadata: new grpc.Metadata(),
              });
            },
          }),
      });
  }

  #read(): Map<string, Principal> {
    let text: string;
    try {
      text = readFileSync(this.#path, 'utf8');
    } catch (err) {
      throw new ConfigError(`--auth-tokens-file ${this.#path}: ${(err as Error).message}`);
    }
    return parseTokens(text, `--auth-tokens-file ${this.#path}`);
  }
}

/** Throws PermissionDeniedError if the principal may not use this lock name, cache key or election name. */
export function authorize(principal: Principal | undefined, what: 'lock' | 'key' | 'election', name: string): void {
  if (principal === undefined || principal.prefixes.length === 0) return;
  if (principal.prefixes.some((prefix) => name.startsWith(prefix))) return;
  throw new PermissionDeniedError(
    `${principal.id} may not use ${what} "${name}": it is limited to names starting with ${principal.prefixes.map((p) => `"${p}"`).join(', ')}`,
  );
}
