// redlock 4 ships no type declarations; this is the part of its API the bench uses.
declare module 'redlock' {
  import type { Redis } from 'ioredis';
  namespace Redlock {
    interface Lock {
      unlock(): Promise<void>;
    }
    interface Options {
      driftFactor?: number;
      retryCount?: number;
      retryDelay?: number;
      retryJitter?: number;
    }
  }
  class Redlock {
    constructor(clients: readonly Redis[], options?: Redlock.Options);
    lock(resource: string, ttlMs: number): Promise<Redlock.Lock>;
  }
  export = Redlock;
}
