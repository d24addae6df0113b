// The lock-backend contract suite on a real etcd.
import { after, before, describe, test } from 'node:test';
import { lockBackendContract } from '../locks/contract.js';
import { etcdCapabilities } from '../../src/locks/etcd/lock-backend.js';
import { startServer } from '../support/server.js';
import { ETCD_SKIP_REASON, etcdAvailable, startEtcd, type EtcdMember } from '../support/etcd.js';

if (!etcdAvailable()) {
  test('lock backend contract: etcd', { skip: ETCD_SKIP_REASON }, () => {});
} else {
  describe('etcd lock backend', () => {
    let etcd: EtcdMember;
    before(async () => {
      etcd = await startEtcd();
    });
    after(async () => {
      await etcd?.[Symbol.asyncDispose]();
    });
    // etcd leases are whole seconds (ttl_ms rounds up), and etcd revokes an expired lease
    // on its next 500 ms check; the test etcd's minimum TTL is 1 s (see support/etcd.ts).
    lockBackendContract({
      backend: 'etcd',
      capabilities: etcdCapabilities,
      shortTtlMs: 1_000,
      start: () => startServer({ etcdEndpoints: etcd.endpoint, etcdPrefix: `latchkey-contract-${process.pid}/` }),
    });
  });
}
