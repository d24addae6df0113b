// Original file: proto/latchkey/v1/elections.proto


export interface ResignResponse {
  'resigned'?: (boolean);
}

export interface ResignResponse__Output {
  'resigned': (boolean);
}
