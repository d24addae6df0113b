// The SDK's deadline lists (client/deadlines.ts), which stand in for a setTimeout per session
// op: each entry falls due once, not before its time, in order; a removed one never does; and
// no timer is left once nothing is waiting (the process may exit).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type DeadlineEntry, type DeadlineList, Deadlines } from '../../client/deadlines.js';

class Entry implements DeadlineEntry {
  dueAt = 0;
  deadlineNext: Entry | undefined = undefined;
  deadlinePrev: Entry | undefined = undefined;
  deadlineList: DeadlineList | undefined = undefined;
  firedAt: number | undefined = undefined;
  constructor(readonly name: string) {}
}

const timeouts = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Waits, at most 5 s, until `done`; bounded, so a loaded machine only makes it slower. */
async function waitFor(done: () => boolean): Promise<void> {
  const until = performance.now() + 5_000;
  while (!done() && performance.now() < until) await sleep(5);
}

test('entries fall due once each, not early, in order; removed ones never; no timer is left', async () => {
  const baseline = timeouts();
  const fired: Entry[] = [];
  const deadlines = new Deadlines<Entry>((e) => {
    e.firedAt = performance.now();
    fired.push(e);
  });
  const a = new Entry('a');
  const b = new Entry('b');
  const c = new Entry('c');
  const d = new Entry('d');
  const e = new Entry('e');
  deadlines.add(a, 40);
  await sleep(10);
  deadlines.add(b, 40);
  deadlines.add(c, 40);
  deadlines.add(d, 15); // another duration: a list of its own, due first
  deadlines.add(e, 40);
  deadlines.remove(c); // from the middle
  deadlines.remove(e); // the tail
  deadlines.remove(e); // twice: a no-op
  assert.equal(timeouts(), baseline + 2, 'one timer per duration');
  await waitFor(() => fired.length >= 3);
  // c and e were removed: they must not come later either.
  await sleep(60);
  assert.deepEqual(
    fired.map((x) => x.name),
    ['d', 'a', 'b'],
  );
  for (const x of fired) {
    assert.ok(x.firedAt! >= x.dueAt - 1, `${x.name} fell due ${(x.dueAt - x.firedAt!).toFixed(1)} ms early`);
    assert.equal(x.deadlineList, undefined);
  }
  assert.equal(timeouts(), baseline, 'a timer was left with nothing waiting');
});

test('an entry added when another falls due, and one removed before any fell due', async () => {
  const baseline = timeouts();
  const fired: string[] = [];
  const again = new Entry('again');
  const deadlines = new Deadlines<Entry>((x) => {
    fired.push(x.name);
    if (x.name === 'first') deadlines.add(again, 20);
  });
  deadlines.add(new Entry('first'), 20);
  const gone = new Entry('gone');
  deadlines.add(gone, 30);
  deadlines.remove(gone);
  await waitFor(() => fired.length >= 2);
  await sleep(40);
  assert.deepEqual(fired, ['first', 'again']);
  assert.equal(timeouts(), baseline);
});
