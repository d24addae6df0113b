// Original file: proto/latchkey/v1/locks.proto


export interface DescribeRequest {
  'name'?: (string);
  'backend'?: (string);
}

export interface DescribeRequest__Output {
  'name': (string);
  'backend': (string);
}
