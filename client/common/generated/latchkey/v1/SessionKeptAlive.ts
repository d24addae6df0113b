// Original file: proto/latchkey/v1/locks.proto

import type { Long } from '@grpc/proto-loader';

export interface SessionKeptAlive {
  'expires_at_ms'?: (number | string | Long);
  'ttl_ms'?: (number | string | Long);
}

export interface SessionKeptAlive__Output {
  'expires_at_ms': (string);
  'ttl_ms': (string);
}
