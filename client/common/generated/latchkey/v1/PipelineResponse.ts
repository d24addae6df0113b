// Original file: proto/latchkey/v1/cache.proto

import type { PipelineResult as _latchkey_v1_PipelineResult, PipelineResult__Output as _latchkey_v1_PipelineResult__Output } from '../../latchkey/v1/PipelineResult.js';

export interface PipelineResponse {
  'results'?: (_latchkey_v1_PipelineResult)[];
}

export interface PipelineResponse__Output {
  'results': (_latchkey_v1_PipelineResult__Output)[];
}
