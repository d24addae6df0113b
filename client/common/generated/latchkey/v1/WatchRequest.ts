// Original file: proto/latchkey/v1/locks.proto


export interface WatchRequest {
  'name'?: (string);
  'backend'?: (string);
}

export interface WatchRequest__Output {
  'name': (string);
  'backend': (string);
}
