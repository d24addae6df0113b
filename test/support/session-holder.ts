// A lock session in its own process, so a test can SIGKILL it: the stream then breaks the
// way a crashed client's does (the connection goes away mid-stream). argv: address backend
// ttlMs name... Opens a session of ttlMs on raw grpc-js (not the SDK), acquires every name
// (try once), prints {"sessionId", "expiresAtMs", "leases": [{name, token}]}, and then
// neither keeps the session alive nor ends it: it waits to be killed.
import * as grpc from '@grpc/grpc-js';
import type { Lease__Output } from '../../client/generated/latchkey/v1/Lease.js';
import { loadProto } from '../../src/proto.js';
import { SessionStream } from './session-stream.js';

const [address, backend, ttlMs, ...names] = process.argv.slice(2) as [string, string, string, ...string[]];
const proto = loadProto();
const client = new proto.latchkey.v1.Locks(address, grpc.credentials.createInsecure());
const stream = await SessionStream.open(client, { backend, ttl_ms: ttlMs, owner: `session-holder-${process.pid}` });
const leases = await Promise.all(stream.ops<Lease__Output>(names.map((name) => ({ acquire: { name } }))));
console.log(
  JSON.stringify({
    sessionId: stream.opened.session_id,
    expiresAtMs: Number(stream.opened.expires_at_ms),
    leases: leases.map((l) => ({ name: l.name, token: l.fencing_token })),
  }),
);
// The open stream keeps the process alive until the test kills it.
