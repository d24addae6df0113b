// Original file: proto/latchkey/v1/cache.proto

import type { GetRequest as _latchkey_v1_GetRequest, GetRequest__Output as _latchkey_v1_GetRequest__Output } from '../../latchkey/v1/GetRequest.js';
import type { SetRequest as _latchkey_v1_SetRequest, SetRequest__Output as _latchkey_v1_SetRequest__Output } from '../../latchkey/v1/SetRequest.js';
import type { CasRequest as _latchkey_v1_CasRequest, CasRequest__Output as _latchkey_v1_CasRequest__Output } from '../../latchkey/v1/CasRequest.js';
import type { AddRequest as _latchkey_v1_AddRequest, AddRequest__Output as _latchkey_v1_AddRequest__Output } from '../../latchkey/v1/AddRequest.js';
import type { DeleteRequest as _latchkey_v1_DeleteRequest, DeleteRequest__Output as _latchkey_v1_DeleteRequest__Output } from '../../latchkey/v1/DeleteRequest.js';
import type { IncrRequest as _latchkey_v1_IncrRequest, IncrRequest__Output as _latchkey_v1_IncrRequest__Output } from '../../latchkey/v1/IncrRequest.js';
import type { TouchRequest as _latchkey_v1_TouchRequest, TouchRequest__Output as _latchkey_v1_TouchRequest__Output } from '../../latchkey/v1/TouchRequest.js';
import type { Long } from '@grpc/proto-loader';

export interface PipelineOp {
  /**
   * Chosen by the client; the result carries it back.
   */
  'tag'?: (number | string | Long);
  'get'?: (_latchkey_v1_GetRequest | null);
  'set'?: (_latchkey_v1_SetRequest | null);
  'cas'?: (_latchkey_v1_CasRequest | null);
  'add'?: (_latchkey_v1_AddRequest | null);
  'delete'?: (_latchkey_v1_DeleteRequest | null);
  'incr'?: (_latchkey_v1_IncrRequest | null);
  'touch'?: (_latchkey_v1_TouchRequest | null);
  /**
   * Optional: the trace context of the caller of this operation, as a propagator writes it
   * into gRPC metadata (W3C: `traceparent`, `tracestate`). One stream carries the operations
   * of many callers, so the stream's own metadata speaks for the first of them only; with
   * this the server traces each operation in its caller's trace.
   */
  'trace_context'?: ({[key: string]: string});
  'op'?: "get"|"set"|"cas"|"add"|"delete"|"incr"|"touch";
}

export interface PipelineOp__Output {
  /**
   * Chosen by the client; the result carries it back.
   */
  'tag': (string);
  'get'?: (_latchkey_v1_GetRequest__Output | null);
  'set'?: (_latchkey_v1_SetRequest__Output | null);
  'cas'?: (_latchkey_v1_CasRequest__Output | null);
  'add'?: (_latchkey_v1_AddRequest__Output | null);
  'delete'?: (_latchkey_v1_DeleteRequest__Output | null);
  'incr'?: (_latchkey_v1_IncrRequest__Output | null);
  'touch'?: (_latchkey_v1_TouchRequest__Output | null);
  /**
   * Optional: the trace context of the caller of this operation, as a propagator writes it
   * into gRPC metadata (W3C: `traceparent`, `tracestate`). One stream carries the operations
   * of many callers, so the stream's own metadata speaks for the first of them only; with
   * this the server traces each operation in its caller's trace.
   */
  'trace_context': ({[key: string]: string});
  'op'?: "get"|"set"|"cas"|"add"|"delete"|"incr"|"touch";
}
