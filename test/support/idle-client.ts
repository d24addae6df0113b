// A client process that makes some cache calls and then just returns, without close(): it
// must exit on its own once its pipeline stream has been idle for a while.
// argv: address. Prints "done" after its last call.
import { connect } from '../../client/index.js';

const client = connect(process.argv[2]!);
const cache = client.cache();
await Promise.all(Array.from({ length: 100 }, (_, i) => cache.set(`idle:${i}`, String(i))));
const items = await Promise.all(Array.from({ length: 100 }, (_, i) => cache.get(`idle:${i}`)));
if (items.some((item, i) => item?.value.toString() !== String(i))) throw new Error('wrong values read back');
console.log('done');
