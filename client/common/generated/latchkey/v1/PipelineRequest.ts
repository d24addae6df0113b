// Original file: proto/latchkey/v1/cache.proto

import type { PipelineOp as _latchkey_v1_PipelineOp, PipelineOp__Output as _latchkey_v1_PipelineOp__Output } from '../../latchkey/v1/PipelineOp.js';

export interface PipelineRequest {
  'ops'?: (_latchkey_v1_PipelineOp)[];
}

export interface PipelineRequest__Output {
  'ops': (_latchkey_v1_PipelineOp__Output)[];
}
