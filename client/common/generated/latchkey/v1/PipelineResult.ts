// Original file: proto/latchkey/v1/cache.proto

import type { GetResponse as _latchkey_v1_GetResponse, GetResponse__Output as _latchkey_v1_GetResponse__Output } from '../../latchkey/v1/GetResponse.js';
import type { SetResponse as _latchkey_v1_SetResponse, SetResponse__Output as _latchkey_v1_SetResponse__Output } from '../../latchkey/v1/SetResponse.js';
import type { CasResponse as _latchkey_v1_CasResponse, CasResponse__Output as _latchkey_v1_CasResponse__Output } from '../../latchkey/v1/CasResponse.js';
import type { AddResponse as _latchkey_v1_AddResponse, AddResponse__Output as _latchkey_v1_AddResponse__Output } from '../../latchkey/v1/AddResponse.js';
import type { DeleteResponse as _latchkey_v1_DeleteResponse, DeleteResponse__Output as _latchkey_v1_DeleteResponse__Output } from '../../latchkey/v1/DeleteResponse.js';
import type { IncrResponse as _latchkey_v1_IncrResponse, IncrResponse__Output as _latchkey_v1_IncrResponse__Output } from '../../latchkey/v1/IncrResponse.js';
import type { TouchResponse as _latchkey_v1_TouchResponse, TouchResponse__Output as _latchkey_v1_TouchResponse__Output } from '../../latchkey/v1/TouchResponse.js';
import type { OpError as _latchkey_v1_OpError, OpError__Output as _latchkey_v1_OpError__Output } from '../../latchkey/v1/OpError.js';
import type { Long } from '@grpc/proto-loader';

export interface PipelineResult {
  'tag'?: (number | string | Long);
  'get'?: (_latchkey_v1_GetResponse | null);
  'set'?: (_latchkey_v1_SetResponse | null);
  'cas'?: (_latchkey_v1_CasResponse | null);
  'add'?: (_latchkey_v1_AddResponse | null);
  'delete'?: (_latchkey_v1_DeleteResponse | null);
  'incr'?: (_latchkey_v1_IncrResponse | null);
  'touch'?: (_latchkey_v1_TouchResponse | null);
  'error'?: (_latchkey_v1_OpError | null);
  'result'?: "get"|"set"|"cas"|"add"|"delete"|"incr"|"touch"|"error";
}

export interface PipelineResult__Output {
  'tag': (string);
  'get'?: (_latchkey_v1_GetResponse__Output | null);
  'set'?: (_latchkey_v1_SetResponse__Output | null);
  'cas'?: (_latchkey_v1_CasResponse__Output | null);
  'add'?: (_latchkey_v1_AddResponse__Output | null);
  'delete'?: (_latchkey_v1_DeleteResponse__Output | null);
  'incr'?: (_latchkey_v1_IncrResponse__Output | null);
  'touch'?: (_latchkey_v1_TouchResponse__Output | null);
  'error'?: (_latchkey_v1_OpError__Output | null);
  'result'?: "get"|"set"|"cas"|"add"|"delete"|"incr"|"touch"|"error";
}
