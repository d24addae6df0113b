// A real OTLP/HTTP trace receiver for tests: POST /v1/traces with OTLP JSON (what an
// OpenTelemetry exporter sends with OTEL_EXPORTER_OTLP_PROTOCOL=http/json), on a free loopback
// port. It keeps every span it is sent, flattened with its resource's service.name, and
// answers as a collector does. A body it cannot read is refused (415/400) and remembered, so a
// test fails on it rather than waiting for spans that never come.
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';

export type AttributeValue = string | number | boolean | null | AttributeValue[];

export interface ReceivedSpan {
  readonly service: string;
  readonly scope: string;
  readonly traceId: string;
  readonly spanId: string;
  /** '' for a root span. */
  readonly parentSpanId: string;
  readonly name: string;
  /** OTLP's SpanKind: 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  readonly kind: number;
  readonly attributes: Readonly<Record<string, AttributeValue>>;
  /** OTLP's status code: 0 unset, 1 ok, 2 error. */
  readonly status: { readonly code: number; readonly message: string };
  readonly links: readonly { readonly traceId: string; readonly spanId: string }[];
}

export const SpanKindCode = { internal: 1, server: 2, client: 3 } as const;

export interface OtlpReceiver extends AsyncDisposable {
  /** http://127.0.0.1:PORT, for OTEL_EXPORTER_OTLP_ENDPOINT (the exporter adds /v1/traces). */
  readonly endpoint: string;
  spans(): readonly ReceivedSpan[];
  /** Requests refused, with why. */
  readonly refused: readonly string[];
  /** Resolves once check(spans) holds; rejects after timeoutMs, listing what did arrive. */
  until(what: string, check: (spans: readonly ReceivedSpan[]) => boolean, timeoutMs?: number): Promise<void>;
}

interface OtlpAnyValue {
  stringValue?: string;
  boolValue?: boolean;
  intValue?: string | number;
  doubleValue?: number;
  arrayValue?: { values?: OtlpAnyValue[] };
}

interface OtlpKeyValue {
  key: string;
  value?: OtlpAnyValue;
}

interface OtlpRequest {
  resourceSpans?: {
    resource?: { attributes?: OtlpKeyValue[] };
    scopeSpans?: {
      scope?: { name?: string };
      spans?: {
        traceId: string;
        spanId: string;
        parentSpanId?: string;
        name: string;
        kind?: number;
        attributes?: OtlpKeyValue[];
        status?: { code?: number; message?: string };
        links?: { traceId: string; spanId: string }[];
      }[];
    }[];
  }[];
}

function anyValue(value: OtlpAnyValue | undefined): AttributeValue {
  if (value === undefined) return null;
  if (value.stringValue !== undefined) return value.stringValue;
  if (value.boolValue !== undefined) return value.boolValue;
  if (value.intValue !== undefined) return Number(value.intValue);
  if (value.doubleValue !== undefined) return value.doubleValue;
  if (value.arrayValue !== undefined) return (value.arrayValue.values ?? []).map(anyValue);
  return null;
}

function attributesOf(list: readonly OtlpKeyValue[] | undefined): Record<string, AttributeValue> {
  return Object.fromEntries((list ?? []).map((kv) => [kv.key, anyValue(kv.value)]));
}

function flatten(request: OtlpRequest): ReceivedSpan[] {
  return (request.resourceSpans ?? []).flatMap((rs) => {
    const service = String(attributesOf(rs.resource?.attributes)['service.name'] ?? '');
    return (rs.scopeSpans ?? []).flatMap((ss) =>
      (ss.spans ?? []).map((s) => ({
        service,
        scope: ss.scope?.name ?? '',
        traceId: s.traceId,
        spanId: s.spanId,
        parentSpanId: s.parentSpanId ?? '',
        name: s.name,
        kind: s.kind ?? 0,
        attributes: attributesOf(s.attributes),
        status: { code: s.status?.code ?? 0, message: s.status?.message ?? '' },
        links: (s.links ?? []).map((l) => ({ traceId: l.traceId, spanId: l.spanId })),
      })),
    );
  });
}

async function body(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const raw = Buffer.concat(chunks);
  return req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw;
}

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const refused: string[] = [];
  const waiters = new Set<() => void>();
  const server = createServer((req, res) => {
    const refuse = (code: number, why: string) => {
      refused.push(why);
      res.writeHead(code, { 'content-type': 'text/plain' }).end(why);
      for (const wake of waiters) wake();
    };
    if (req.method !== 'POST' || req.url !== '/v1/traces') return refuse(404, `${req.method} ${req.url}`);
    if (!String(req.headers['content-type']).startsWith('application/json'))
      return refuse(415, `content-type ${req.headers['content-type']}: this receiver reads OTLP JSON only`);
    body(req).then(
      (raw) => {
        let request: OtlpRequest;
        try {
          request = JSON.parse(raw.toString('utf8')) as OtlpRequest;
        } catch (err) {
          return refuse(400, `not JSON: ${(err as Error).message}`);
        }
        spans.push(...flatten(request));
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
        for (const wake of waiters) wake();
      },
      (err: Error) => refuse(400, err.message),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    spans: () => spans,
    refused,
    until(what, check, timeoutMs = 20_000) {
      return new Promise((resolve, reject) => {
        const done = () => {
          clearTimeout(timer);
          waiters.delete(wake);
        };
        const wake = () => {
          if (refused.length > 0) {
            done();
            reject(new Error(`the receiver refused a request: ${refused.join('; ')}`));
          } else if (check(spans)) {
            done();
            resolve();
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(
            new Error(
              `timed out after ${timeoutMs} ms waiting for ${what}; received ${spans.length} spans: ${spans.map((s) => `${s.service}:${s.name}`).join(', ')}`,
            ),
          );
        }, timeoutMs);
        waiters.add(wake);
        wake();
      });
    },
    async [Symbol.asyncDispose]() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
