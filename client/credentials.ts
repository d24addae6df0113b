// How the SDK proves who it is to a server: TLS channel credentials (mutual TLS when a client
// certificate is given), and a bearer token sent as `authorization: Bearer <token>` metadata
// on every call and stream by a client interceptor.
//
// NOTE: the token is per-call metadata, not grpc-js CallCredentials: grpc-js refuses call
// credentials on an insecure channel, and a server on loopback (or behind --insecure on a
// private network) is plaintext. The price is that nothing stops a token from crossing a
// plaintext network: give `tls` for any server that is not on this host or a private network.
import * as grpc from '@grpc/grpc-js';
import { InvalidArgumentError } from './errors.js';

/** PEM text, as a string or the bytes of a .pem file. */
export type Pem = string | Buffer;

export interface TlsOptions {
  /** CA bundle the server's certificate must chain to; default Node's bundled root CAs. */
  readonly ca?: Pem;
  /**
   * Mutual TLS: this client's certificate (chain); needs `key` (one without the other is refused).
   * Default none.
   */
  readonly cert?: Pem;
  /** The private key of `cert`. Default none. */
  readonly key?: Pem;
  /**
   * The name the server's certificate must carry, when it is not the host of the address
   * (e.g. connecting to 10.0.0.5 whose certificate names latchkey.internal). Default the
   * address's host; '' is refused.
   */
  readonly serverName?: string;
}

/**
 * A bearer token, or a function the client calls before every call and stream to get the
 * current one (rotate tokens there; cache inside it if fetching one is slow). Surrounding
 * whitespace, such as a token file's trailing newline, is trimmed.
 */
export type TokenSource = string | (() => string | Promise<string>);

function pemBuffer(field: string, value: Pem | undefined): Buffer | null {
  if (value === undefined) return null;
  const buffer = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
  // A path where PEM text belongs is the likely mistake; say so rather than fail the handshake.
  if (!buffer.includes('-----BEGIN ')) {
    throw new InvalidArgumentError(
      `tls.${field} must be PEM text (-----BEGIN ...), not a file name: pass readFileSync(path)`,
    );
  }
  return buffer;
}

/** The channel credentials for `tls`, or `credentials` as given, or plaintext. */
export function channelCredentials(
  tls: TlsOptions | undefined,
  credentials: grpc.ChannelCredentials | undefined,
): grpc.ChannelCredentials {
  if (tls === undefined) return credentials ?? grpc.credentials.createInsecure();
  if (credentials !== undefined) throw new InvalidArgumentError('give either `credentials` or `tls`, not both');
  if ((tls.cert === undefined) !== (tls.key === undefined)) {
    throw new InvalidArgumentError('tls.cert and tls.key go together: a client certificate needs its private key');
  }
  if (tls.serverName !== undefined && tls.serverName === '')
    throw new InvalidArgumentError('tls.serverName must not be empty');
  return grpc.credentials.createSsl(pemBuffer('ca', tls.ca), pemBuffer('key', tls.key), pemBuffer('cert', tls.cert));
}

/** Channel options `tls` needs: the name to check the server's certificate against. */
export function tlsChannelOptions(tls: TlsOptions | undefined): grpc.ChannelOptions {
  return tls?.serverName === undefined ? {} : { 'grpc.ssl_target_name_override': tls.serverName };
}

/** Visible ASCII: what a gRPC metadata value can carry, and what a server's tokens file holds. */
const TOKEN = /^[\x21-\x7e]+$/;

function checkToken(raw: unknown): string {
  if (typeof raw !== 'string') throw new TypeError(`the token provider returned ${typeof raw}, not a string`);
  const token = raw.trim();
  if (token === '') throw new TypeError('the token is empty');
  if (!TOKEN.test(token))
    throw new TypeError('the token may hold only visible ASCII characters: no spaces, line breaks or other text');
  return token;
}

/** Adds `authorization: Bearer <token>` to every call made through the client. */
export function tokenInterceptor(source: TokenSource): grpc.Interceptor {
  if (typeof source === 'string') {
    let token: string;
    try {
      token = checkToken(source);
    } catch (err) {
      throw new InvalidArgumentError(`token: ${(err as Error).message}`);
    }
    return (options, next) => new grpc.InterceptingCall(next(options), withToken(token));
  }
  return (options, next) => {
    let result: string | Promise<string>;
    try {
      result = source();
    } catch (err) {
      return new grpc.InterceptingCall(new DeferredCall(options, next, Promise.reject(err)));
    }
    if (typeof result === 'string') {
      try {
        return new grpc.InterceptingCall(next(options), withToken(checkToken(result)));
      } catch (err) {
        return new grpc.InterceptingCall(new DeferredCall(options, next, Promise.reject(err)));
      }
    }
    return new grpc.InterceptingCall(new DeferredCall(options, next, Promise.resolve(result).then(checkToken)));
  };
}

function withToken(token: string): grpc.Requester {
  return {
    start(metadata, listener, next) {
      metadata.set('authorization', `Bearer ${token}`);
      next(metadata, listener);
    },
  };
}

type CallInterface = ReturnType<grpc.NextCall>;
type MessageContext = Parameters<CallInterface['sendMessageWithContext']>[0];

/**
 * A call whose token comes from a promise: the real call is created only once the token is
 * there; until then its operations wait here, in order.
 * NOTE: it must not be created earlier. grpc-js starts a call's deadline timer when it creates
 * the call, and a deadline (or a cancel) that ends a call not yet started reports its status
 * to nobody: the caller would wait forever. So the deadline and cancels are handled here
 * until the real call exists.
 */
class DeferredCall implements CallInterface {
  #call: CallInterface | undefined;
  #metadata: grpc.Metadata | undefined;
  #listener: Partial<grpc.InterceptingListener> | undefined;
  #token: string | undefined;
  readonly #waiting: ((call: CallInterface) => void)[] = [];
  #status: grpc.StatusObject | undefined;
  #timer: NodeJS.Timeout | undefined;
  readonly #options: grpc.InterceptorOptions;
  readonly #next: grpc.NextCall;

  constructor(options: grpc.InterceptorOptions, next: grpc.NextCall, token: Promise<string>) {
    this.#options = options;
    this.#next = next;
    const deadline = options.deadline instanceof Date ? options.deadline.getTime() : (options.deadline ?? Infinity);
    if (Number.isFinite(deadline)) {
      this.#timer = setTimeout(
        () => this.#end(grpc.status.DEADLINE_EXCEEDED, 'deadline exceeded while waiting for the token provider'),
        Math.max(0, deadline - Date.now()),
      );
      // The provider's own work keeps the process alive while it is worth waiting for.
      this.#timer.unref();
    }
    token.then(
      (value) => {
        this.#token = value;
        this.#begin();
      },
      (err: unknown) =>
        this.#end(
          grpc.status.UNAUTHENTICATED,
          `the token provider failed: ${err instanceof Error ? err.message : String(err)}`,
        ),
    );
  }

  /** Creates and starts the real call once both start() and the token have come. */
  #begin(): void {
    if (this.#status !== undefined || this.#token === undefined || this.#metadata === undefined) return;
    clearTimeout(this.#timer);
    this.#metadata.set('authorization', `Bearer ${this.#token}`);
    const call = this.#next(this.#options);
    this.#call = call;
    call.start(this.#metadata, this.#listener);
    for (const op of this.#waiting.splice(0)) op(call);
  }

  #end(code: grpc.status, details: string): void {
    if (this.#status !== undefined || this.#call !== undefined) return;
    clearTimeout(this.#timer);
    this.#waiting.length = 0;
    this.#status = { code, details, metadata: new grpc.Metadata() };
    this.#report();
  }

  #report(): void {
    const status = this.#status;
    const listener = this.#listener;
    // Asynchronously, as a real call reports: never from inside the caller's cancel().
    if (status !== undefined && listener !== undefined) process.nextTick(() => listener.onReceiveStatus?.(status));
  }

  #then(op: (call: CallInterface) => void): void {
    if (this.#call !== undefined) op(this.#call);
    else if (this.#status === undefined) this.#waiting.push(op);
  }

  start(metadata: grpc.Metadata, listener?: Partial<grpc.InterceptingListener>): void {
    this.#metadata = metadata;
    this.#listener = listener;
    if (this.#status !== undefined) this.#report();
    else this.#begin();
  }

  sendMessageWithContext(context: MessageContext, message: unknown): void {
    this.#then((call) => call.sendMessageWithContext(context, message));
  }

  sendMessage(message: unknown): void {
    this.#then((call) => call.sendMessage(message));
  }

  startRead(): void {
    this.#then((call) => call.startRead());
  }

  halfClose(): void {
    this.#then((call) => call.halfClose());
  }

  cancelWithStatus(code: grpc.status, details: string): void {
    if (this.#call !== undefined) this.#call.cancelWithStatus(code, details);
    else this.#end(code, details);
  }

  getPeer(): string {
    return this.#call?.getPeer() ?? 'unknown';
  }

  getAuthContext(): ReturnType<CallInterface['getAuthContext']> {
    return this.#call?.getAuthContext() ?? null;
  }
}
