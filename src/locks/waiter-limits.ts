// The limits on calls that may wait (Acquires with a wait, Campaigns), per name and in all
// (--max-waiters-per-lock, --max-waiters): each holds a call, timers and backend resources,
// so a flood of them is refused before it can exhaust the server.
import { ResourceExhaustedError } from '../errors.js';

export interface WaiterLimitOptions {
  readonly perName: number;
  readonly total: number;
  /** "N callers already wait for lock "x"" */
  readonly forName: (count: number, name: string) => string;
  /** "N callers already wait for locks" */
  readonly inAll: (count: number) => string;
}

export class WaiterLimits {
  readonly #options: WaiterLimitOptions;
  readonly #waiting = new Map<string, number>();
  #total = 0;

  constructor(options: WaiterLimitOptions) {
    this.#options = options;
  }

  /** Counts one more waiter of `name`, or refuses it; returns what takes it off again (call once). */
  admit(name: string): () => void {
    const { perName, total, forName, inAll } = this.#options;
    const here = this.#waiting.get(name) ?? 0;
    if (here >= perName)
      throw new ResourceExhaustedError(
        `${forName(here, name)} through this server; the limit is ${perName} (--max-waiters-per-lock)`,
      );
    if (this.#total >= total)
      throw new ResourceExhaustedError(
        `${inAll(this.#total)} through this server; the limit is ${total} (--max-waiters)`,
      );
    this.#waiting.set(name, here + 1);
    this.#total++;
    return () => {
      this.#total--;
      const left = this.#waiting.get(name)! - 1;
      if (left === 0) this.#waiting.delete(name);
      else this.#waiting.set(name, left);
    };
  }
}
