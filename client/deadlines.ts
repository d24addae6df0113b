// Deadlines for many operations at once: one timer per distinct duration, its operations in
// the order they were added (so in the order they fall due), as Node keeps its own timer
// lists. A session op's deadline was a setTimeout of its own: a Timeout object, an async
// resource and a timer-list insert per lock and per release, about a twentieth of the SDK's
// CPU in a lock cycle. The timers are ref'd, as setTimeout's are: a caller waits for these
// operations.

/** setTimeout's longest delay; a longer deadline is waited out in steps of it. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** What a deadline list holds: an entry links itself, so adding and removing allocate nothing. */
export interface DeadlineEntry {
  /** performance.now() at which it falls due. */
  dueAt: number;
  deadlineNext: DeadlineEntry | undefined;
  deadlinePrev: DeadlineEntry | undefined;
  /** The list it is in; undefined when in none. */
  deadlineList: DeadlineList | undefined;
}

export class DeadlineList {
  head: DeadlineEntry | undefined = undefined;
  tail: DeadlineEntry | undefined = undefined;
  timer: NodeJS.Timeout | undefined = undefined;
  constructor(readonly durationMs: number) {}
}

/**
 * Deadlines of entries of type T; `due` is called for each entry whose deadline passed, once,
 * after which it is in no list.
 */
export class Deadlines<T extends DeadlineEntry> {
  readonly #lists = new Map<number, DeadlineList>();
  readonly #due: (entry: T) => void;

  constructor(due: (entry: T) => void) {
    this.#due = due;
  }

  /** Adds `entry`, due `durationMs` from now. */
  add(entry: T, durationMs: number, now = performance.now()): void {
    let list = this.#lists.get(durationMs);
    if (list === undefined) this.#lists.set(durationMs, (list = new DeadlineList(durationMs)));
    entry.dueAt = now + durationMs;
    entry.deadlineList = list;
    entry.deadlineNext = undefined;
    entry.deadlinePrev = list.tail;
    if (list.tail === undefined) list.head = entry;
    else list.tail.deadlineNext = entry;
    list.tail = entry;
    list.timer ??= setTimeout(this.#fire, Math.min(durationMs, MAX_TIMER_MS), list);
  }

  /** Takes `entry` out of its list (a no-op if it is in none). */
  remove(entry: T): void {
    const list = entry.deadlineList;
    if (list === undefined) return;
    const { deadlinePrev: prev, deadlineNext: next } = entry;
    if (prev === undefined) list.head = next;
    else prev.deadlineNext = next;
    if (next === undefined) list.tail = prev;
    else next.deadlinePrev = prev;
    entry.deadlineList = entry.deadlineNext = entry.deadlinePrev = undefined;
    if (list.head === undefined) {
      clearTimeout(list.timer);
      list.timer = undefined;
      this.#lists.delete(list.durationMs);
    }
  }

  readonly #fire = (list: DeadlineList): void => {
    list.timer = undefined;
    // +1: a timer may fire up to a millisecond before performance.now() says it is due.
    const now = performance.now() + 1;
    let entry = list.head;
    while (entry !== undefined && entry.dueAt <= now) {
      this.remove(entry as T);
      this.#due(entry as T);
      entry = list.head;
    }
    if (list.head !== undefined && list.timer === undefined)
      list.timer = setTimeout(
        this.#fire,
        Math.min(Math.max(0, list.head.dueAt - performance.now()), MAX_TIMER_MS),
        list,
      );
  };
}
