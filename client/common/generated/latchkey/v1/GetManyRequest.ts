// Original file: proto/latchkey/v1/cache.proto


export interface GetManyRequest {
  'store'?: (string);
  'keys'?: (string)[];
}

export interface GetManyRequest__Output {
  'store': (string);
  'keys': (string)[];
}
