// Unary-shaped calls sent through Cache/Pipeline, so the cache contract suite can run the
// same checks through the stream: each call becomes one tagged operation, and a failed
// operation rejects with a grpc-js-like error ({code, details}).
import type * as grpc from '@grpc/grpc-js';
import type { CacheClient, PipelineResponse__Output } from '../../client/common/index.js';

const OPS: Record<string, string> = {
  Get: 'get',
  Set: 'set',
  Cas: 'cas',
  Add: 'add',
  Delete: 'delete',
  Incr: 'incr',
  Touch: 'touch',
};

export class PipelineCaller {
  readonly #stream: grpc.ClientDuplexStream<object, PipelineResponse__Output>;
  readonly #waiting = new Map<string, { resolve: (v: unknown) => void; reject: (e: unknown) => void }>();
  #tag = 0;

  constructor(client: CacheClient) {
    this.#stream = client.Pipeline();
    this.#stream.on('data', (response: PipelineResponse__Output) => {
      for (const result of response.results) {
        const waiter = this.#waiting.get(result.tag);
        this.#waiting.delete(result.tag);
        if (result.result === 'error')
          waiter?.reject(
            Object.assign(new Error(result.error!.message), {
              code: result.error!.code,
              details: result.error!.message,
              reason: result.error!.reason,
            }),
          );
        else waiter?.resolve(result[result.result!]);
      }
    });
    this.#stream.on('error', (err) => {
      for (const waiter of this.#waiting.values()) waiter.reject(err);
      this.#waiting.clear();
    });
  }

  call<Res>(method: string, request: object): Promise<Res> {
    const op = OPS[method];
    if (op === undefined) throw new Error(`${method} cannot go through the pipeline`);
    const tag = String(++this.#tag);
    return new Promise<Res>((resolve, reject) => {
      this.#waiting.set(tag, { resolve: resolve as (v: unknown) => void, reject });
      this.#stream.write({ ops: [{ tag, [op]: request }] });
    });
  }

  close(): void {
    this.#stream.end();
  }
}
