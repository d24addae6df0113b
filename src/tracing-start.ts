// `latchkey serve` turns tracing on the way any OpenTelemetry service does: from the standard
// OTEL_* variables, read by the OpenTelemetry Node SDK itself (exporter, endpoint, protocol,
// service name, resource attributes, sampler, propagators). The spans are tracing.ts's.
//
// NOTE: off unless asked for. The OpenTelemetry specification defaults OTEL_TRACES_EXPORTER to
// otlp, which would make every server export to localhost:4318 out of the box; here tracing
// starts only when a variable names an exporter or an OTLP endpoint or protocol, so an
// untraced server loads none of the SDK (it is imported below, on demand) and pays only the
// API's non-recording spans.
import type { Logger } from './log.js';

type Env = Readonly<Record<string, string | undefined>>;

/** The variables any of which turns tracing on (OTEL_TRACES_EXPORTER=none turns it off). */
export const TRACING_VARIABLES = [
  'OTEL_TRACES_EXPORTER',
  'OTEL_EXPORTER_OTLP_ENDPOINT',
  'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT',
  'OTEL_EXPORTER_OTLP_PROTOCOL',
  'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL',
] as const;

/** The service.name spans carry unless OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES names one. */
export const DEFAULT_SERVICE_NAME = 'latchkey';

/** How long stopping waits for the last spans to be exported, in ms. */
const FLUSH_TIMEOUT_MS = 5_000;

const set = (value: string | undefined) => value !== undefined && value.trim() !== '';

/** Whether `env` asks for traces: OTEL_SDK_DISABLED not true, and an exporter other than none, or an OTLP endpoint or protocol. */
export function tracingRequested(env: Env): boolean {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return false;
  const exporters = env.OTEL_TRACES_EXPORTER?.split(',').map((e) => e.trim().toLowerCase()) ?? [];
  if (exporters.includes('none')) return false;
  return TRACING_VARIABLES.some((name) => set(env[name]));
}

export interface Tracing {
  /** Exports the spans still buffered and stops; waits at most 5 s (an unreachable collector). */
  shutdown(): Promise<void>;
}

/**
 * Starts the OpenTelemetry SDK and registers it globally when `env` asks for traces (see
 * tracingRequested); undefined, with nothing loaded, when it does not. Only traces: no metrics
 * (GET /metrics has them) and no logs.
 */
export async function startTracing(env: Env, log: Logger): Promise<Tracing | undefined> {
  if (!tracingRequested(env)) return undefined;
  const { NodeSDK } = await import('@opentelemetry/sdk-node');
  const named = set(env.OTEL_SERVICE_NAME) || /(^|,)\s*service\.name\s*=/.test(env.OTEL_RESOURCE_ATTRIBUTES ?? '');
  const sdk = new NodeSDK({
    ...(named ? {} : { serviceName: DEFAULT_SERVICE_NAME }),
    metricReaders: [],
    logRecordProcessors: [],
  });
  sdk.start();
  log.info(
    {
      event: 'tracing',
      exporter: env.OTEL_TRACES_EXPORTER ?? 'otlp',
      endpoint: env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? env.OTEL_EXPORTER_OTLP_ENDPOINT ?? null,
      protocol: env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ?? env.OTEL_EXPORTER_OTLP_PROTOCOL ?? 'http/protobuf',
    },
    'tracing on (OpenTelemetry)',
  );
  return {
    async shutdown() {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, FLUSH_TIMEOUT_MS).unref()));
      await Promise.race([sdk.shutdown().catch(() => {}), timeout]);
      clearTimeout(timer);
    },
  };
}
