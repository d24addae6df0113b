// Original file: proto/latchkey/v1/locks.proto


export interface SessionKeepAlive {
}

export interface SessionKeepAlive__Output {
}
