// Small assertions shared by the test suites.
import assert from 'node:assert/strict';
import type * as grpc from '@grpc/grpc-js';

/** The error a call failed with; fails the test if the call succeeded. */
export async function rejection(promise: Promise<unknown>): Promise<grpc.ServiceError> {
  try {
    await promise;
  } catch (err) {
    return err as grpc.ServiceError;
  }
  assert.fail('expected the call to fail');
}
