// The partition harness itself (test/support/netns.ts): a partition drops traffic both ways and
// silently, a cut one way only, heal restores it; the machine's own interfaces and routes are
// untouched; a test process that is terminated tears its network down, and what a SIGKILLed
// one leaves behind is removed by the next sweep, which spares the networks of live owners.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { alive, createNetwork, namespacesOf, netnsMissing, sweepStaleNamespaces } from '../support/netns.js';
import { runScript } from '../support/script.js';

const skip = netnsMissing();
const HOLDER = join('test', 'support', 'netns-holder.ts');

/** Sends "ping" through a unix socket made by reach() and waits for the echo, bounded. */
function echo(socket: string, timeoutMs: number): Promise<'echoed' | 'timeout' | string> {
  return new Promise((resolve) => {
    const s = connect(socket.replace(/^unix:/, ''));
    let got = '';
    const timer = setTimeout(() => {
      s.destroy();
      resolve('timeout');
    }, timeoutMs);
    s.on('data', (d) => {
      got += d;
      if (got === 'ping') {
        clearTimeout(timer);
        s.destroy();
        resolve('echoed');
      }
    });
    s.on('error', (err) => {
      clearTimeout(timer);
      resolve(err.message);
    });
    s.write('ping');
  });
}

const rootView = () =>
  [['link'], ['addr'], ['route'], ['-6', 'route']]
    .map((args) => execFileSync('ip', ['-o', ...args], { encoding: 'utf8' }).replace(/\s+$/gm, ''))
    .join('\n');

/** Whether `pid` is gone within a second (a killed process is a zombie until it is reaped). */
async function gone(pid: number): Promise<boolean> {
  for (let i = 0; i < 50 && alive(pid); i++) await new Promise((resolve) => setTimeout(resolve, 20));
  return !alive(pid);
}

describe('netns harness', { skip }, () => {
  test('partition, one-way cut and heal, on a network the machine itself never sees', {
    timeout: 60_000,
  }, async () => {
    const before = rootView();
    {
      await using net = await createNetwork(['a', 'b']);
      assert.equal(rootView(), before, "creating the network changed the machine's own links, addresses or routes");
      const b = net.host('b');
      // An echo server on b's address, stopped with the network.
      b.launch(
        process.execPath,
        ['-e', `require('net').createServer((s) => s.pipe(s)).listen(7000, '${b.address}', () => console.log('up'))`],
        { stdio: ['ignore', 'pipe', 'ignore'] },
      ).stdout!.once('data', () => {});
      const path = await net.host('a').reach(`${b.address}:7000`);
      const deadline = performance.now() + 10_000;
      while ((await echo(path, 1_000)) !== 'echoed')
        assert.ok(performance.now() < deadline, 'the echo server never answered');

      await net.partition(['a'], ['b']);
      assert.deepEqual(net.cuts(), ['a>b', 'b>a']);
      // Dropped, not refused: the client only times out.
      assert.equal(await echo(path, 700), 'timeout');
      await net.heal();
      assert.equal(await echo(path, 3_000), 'echoed');
      // One way: b's answers (its SYN-ACK) are dropped, a's requests pass.
      await net.cut(['b'], ['a']);
      assert.equal(await echo(path, 700), 'timeout');
      await net.heal();
      assert.equal(await echo(path, 3_000), 'echoed');
    }
    assert.equal(rootView(), before, "tearing the network down left the machine's own view changed");
  });

  test("a terminated test process tears its network down; a SIGKILLed one's is swept, a live one's kept", {
    timeout: 60_000,
  }, async () => {
    await using mine = await createNetwork(['m']);
    const start = async () => {
      const holder = runScript(HOLDER, []);
      const ready = await holder.waitFor((m) => m.ready === true, 'the network');
      return { holder, id: String(ready.id), pid: Number(ready.pid) };
    };

    const terminated = await start();
    assert.equal(namespacesOf(terminated.id).length, 3, 'the switch and two hosts');
    terminated.holder.kill('SIGTERM');
    await terminated.holder.exited();
    assert.deepEqual(namespacesOf(terminated.id), [], 'SIGTERM left namespaces behind');
    assert.ok(await gone(terminated.pid), 'SIGTERM left a process running inside');

    const killed = await start();
    killed.holder.kill('SIGKILL');
    await killed.holder.exited();
    assert.equal(namespacesOf(killed.id).length, 3, 'a SIGKILLed process cannot clean up: its namespaces stay');
    assert.equal(alive(killed.pid), true);
    const doomed = namespacesOf(killed.id);
    const removed = sweepStaleNamespaces();
    for (const ns of doomed) assert.ok(removed.includes(ns), `the sweep left ${ns} of a dead owner`);
    assert.deepEqual(namespacesOf(killed.id), []);
    const socketDirs = (id: string) => readdirSync('/tmp').filter((d) => d.startsWith(`${id}-`));
    assert.deepEqual(socketDirs(killed.id), [], "the sweep left the dead owner's socket directory");
    assert.deepEqual(socketDirs(terminated.id), [], 'SIGTERM left the socket directory');
    assert.ok(await gone(killed.pid), 'the sweep left a process running in a deleted namespace');
    // Only namespaces of dead owners go (another run's, killed earlier, may be among them).
    for (const ns of removed) assert.equal(alive(Number(/^lkp(\d+)x/.exec(ns)![1])), false, `${ns}: its owner lives`);
    assert.equal(namespacesOf(mine.id).length, 2, 'the sweep removed a live owner’s network');
  });
});
