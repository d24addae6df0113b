// Preloaded into a latchkey server by the bench (NODE_OPTIONS=--import=...; node 20 refuses
// --cpu-prof and --expose-gc there, and spawnServer takes no node flags). Plain JavaScript:
// it loads before tsx.
//   BENCH_CPU_PROFILE=FILE  samples the main thread with the inspector's CPU profiler from
//                           start-up and writes the profile (the format --cpu-prof writes) to
//                           FILE when the process winds down after SIGTERM.
//   BENCH_GC_SIGNAL=1       on SIGUSR2, runs a full garbage collection and then prints
//                           "bench-preload: gc N done" on stderr, so RSS can be read without
//                           the garbage a load leaves behind.
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { isMainThread } from 'node:worker_threads';

const file = process.env.BENCH_CPU_PROFILE;
const gcSignal = process.env.BENCH_GC_SIGNAL === '1';

if (isMainThread && (file || gcSignal)) {
  const session = new Session();
  session.connect();
  if (gcSignal) {
    let n = 0;
    process.on('SIGUSR2', () => {
      session.post('HeapProfiler.collectGarbage', () => process.stderr.write(`bench-preload: gc ${++n} done\n`));
    });
  }
  if (file) {
    session.post('Profiler.enable');
    session.post('Profiler.setSamplingInterval', { interval: 250 });
    session.post('Profiler.start');
    let written = false;
    const write = () => {
      if (written) return;
      written = true;
      // NOTE: the main thread's own session answers synchronously, so this works in 'exit' too.
      session.post('Profiler.stop', (err, result) => {
        if (!err) writeFileSync(file, JSON.stringify(result.profile));
      });
    };
    process.once('beforeExit', write);
    process.once('exit', write);
  }
}
