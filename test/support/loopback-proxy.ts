// An in-process TCP proxy on a free loopback port in front of a real server, so a test can break a
// client's connection (etcd3's tests cut traffic the same way) without touching the server:
// cut() drops every connection through it and keeps listening, close() stops it for good,
// so that the server behind it looks gone to the client; stall() holds every byte either way
// and resets nothing, as a network partition does (the client's connection stays open and
// silent), until resume().
// (tcp-proxy.ts is the partition tests' gateway, a process of its own; this one lives in the test.)
import { createServer, connect, type Socket } from 'node:net';

export interface TcpProxy extends AsyncDisposable {
  /** 127.0.0.1:port the proxy listens on. */
  readonly address: string;
  /** Connections accepted so far. */
  readonly accepted: number;
  /** Drops every connection through the proxy (both sides reset); new ones are still accepted. */
  cut(): void;
  /**
   * From now on no byte passes either way, on open connections or new ones, and nothing is
   * reset: a partition, as the client sees it. Held bytes pass on resume(), in order.
   */
  stall(): void;
  resume(): void;
  /** Stops accepting (clients then find the port closed) and drops every connection. */
  close(): Promise<void>;
}

export async function startTcpProxy(target: string): Promise<TcpProxy> {
  const split = target.lastIndexOf(':');
  const host = target.slice(0, split);
  const port = Number(target.slice(split + 1));
  const sockets = new Set<Socket>();
  let accepted = 0;
  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
  };
  let stalled = false;
  const held: (() => void)[] = [];
  /** from → to, holding the bytes while stalled. */
  const forward = (from: Socket, to: Socket) =>
    from.on('data', (chunk: Buffer) => {
      if (stalled) held.push(() => to.write(chunk));
      else to.write(chunk);
    });
  const server = createServer((client) => {
    accepted++;
    const upstream = connect(port, host);
    track(client);
    track(upstream);
    forward(client, upstream);
    forward(upstream, client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port: listening } = server.address() as { port: number };
  const cut = () => {
    for (const socket of sockets) socket.resetAndDestroy();
  };
  let closed: Promise<void> | undefined;
  const close = () =>
    (closed ??= new Promise<void>((resolve) => {
      server.close(() => resolve());
      cut();
    }));
  return {
    address: `127.0.0.1:${listening}`,
    get accepted() {
      return accepted;
    },
    cut,
    stall: () => {
      stalled = true;
    },
    resume: () => {
      stalled = false;
      for (const write of held.splice(0)) write();
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}
