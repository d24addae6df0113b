// Original file: proto/latchkey/v1/elections.proto


export interface LeaderRequest {
  'name'?: (string);
  'backend'?: (string);
}

export interface LeaderRequest__Output {
  'name': (string);
  'backend': (string);
}
