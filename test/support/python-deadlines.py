# A real gRPC C-core client (Debian's python3-grpcio) waiting for a held lock with a deadline
# shorter than its wait_ms: one JSON line per deadline with how the call ended.
# usage: python3 python-deadlines.py HOST:PORT LOCK_NAME WAIT_MS DEADLINE_S...
import json
import sys
import time

import grpc
from latchkey.v1 import locks_pb2, locks_pb2_grpc

address, name, wait_ms = sys.argv[1], sys.argv[2], int(sys.argv[3])
with grpc.insecure_channel(address) as channel:
    # Connect first, so no deadline below also pays for the connection.
    grpc.channel_ready_future(channel).result(timeout=30)
    locks = locks_pb2_grpc.LocksStub(channel)
    for deadline_s in map(float, sys.argv[4:]):
        started = time.monotonic()
        try:
            locks.Acquire(locks_pb2.AcquireRequest(name=name, wait_ms=wait_ms, owner="python"), timeout=deadline_s)
            outcome = {"code": "OK", "details": "", "reason": ""}
        except grpc.RpcError as err:
            trailers = dict(err.trailing_metadata() or ())
            outcome = {"code": err.code().name, "details": err.details(), "reason": trailers.get("latchkey-error", "")}
        outcome.update(deadline_s=deadline_s, elapsed_s=time.monotonic() - started)
        print(json.dumps(outcome), flush=True)
