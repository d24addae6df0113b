// Original file: proto/latchkey/v1/locks.proto


export interface ReleaseRequest {
  'name'?: (string);
  'backend'?: (string);
  'lease_id'?: (string);
}

export interface ReleaseRequest__Output {
  'name': (string);
  'backend': (string);
  'lease_id': (string);
}
