// Original file: proto/latchkey/v1/elections.proto


export interface ObserveRequest {
  'name'?: (string);
  'backend'?: (string);
}

export interface ObserveRequest__Output {
  'name': (string);
  'backend': (string);
}
