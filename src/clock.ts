// Time as the TTL logic sees it. Production uses the real clock; unit tests of TTL logic
// pass a manual clock so expiry can be stepped without sleeping.

export interface Timer {
  cancel(): void;
}

export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
  /** Runs fn once after ms milliseconds unless cancelled first. */
  schedule(ms: number, fn: () => void): Timer;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  schedule(ms, fn) {
    // setTimeout's delay is a 32-bit signed integer; longer delays fire at once. Chain.
    const MAX = 2 ** 31 - 1;
    let handle: NodeJS.Timeout;
    const arm = (left: number) => {
      handle = setTimeout(() => (left > MAX ? arm(left - MAX) : fn()), Math.min(Math.max(left, 0), MAX));
    };
    arm(ms);
    return { cancel: () => clearTimeout(handle) };
  },
};

/** A clock that only moves when told to; timers fire in due order during advance(). */
export class ManualClock implements Clock {
  #now: number;
  #timers: { due: number; seq: number; fn: () => void; cancelled: boolean }[] = [];
  #seq = 0;

  constructor(startMs = 1_700_000_000_000) {
    this.#now = startMs;
  }

  now(): number {
    return this.#now;
  }

  schedule(ms: number, fn: () => void): Timer {
    const timer = { due: this.#now + Math.max(ms, 0), seq: this.#seq++, fn, cancelled: false };
    this.#timers.push(timer);
    return { cancel: () => void (timer.cancelled = true) };
  }

  advance(ms: number): void {
    const target = this.#now + ms;
    for (;;) {
      const live = this.#timers.filter((t) => !t.cancelled && t.due <= target);
      if (live.length === 0) break;
      live.sort((a, b) => a.due - b.due || a.seq - b.seq);
      const next = live[0]!;
      next.cancelled = true;
      this.#now = next.due;
      next.fn();
    }
    this.#timers = this.#timers.filter((t) => !t.cancelled);
    this.#now = target;
  }
}
