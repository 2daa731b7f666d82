/**
 * Prometheus metrics. One registry per process, so that the all-in-one, where
 * several services share a process, exposes its process metrics once and tells
 * services apart by the `service` label.
 */
import { Histogram, Registry, collectDefaultMetrics } from 'prom-client';

type HttpLabel = 'service' | 'method' | 'route' | 'status';
type HttpChild = ReturnType<Histogram<HttpLabel>['labels']>;

export interface Metrics {
  /** For a service's own metrics, registered next to the HTTP ones. */
  readonly registry: Registry;
  /** The Content-Type of render()'s text. */
  readonly contentType: string;
  /**
   * `route` is the route template (`/v3/users/:user_id`), never the request path:
   * every distinct label value is a separate time series.
   */
  observeHttpRequest(method: string, route: string, status: number, seconds: number): void;
  render(): Promise<string>;
}

let shared: { registry: Registry; http: Histogram<HttpLabel> } | undefined;

function processMetrics() {
  if (!shared) {
    const registry = new Registry();
    collectDefaultMetrics({ register: registry });
    const http = new Histogram<HttpLabel>({
      name: 'onestack_http_request_duration_seconds',
      help: 'Time to answer an API request, by service, method, route template and status.',
      labelNames: ['service', 'method', 'route', 'status'],
      // Up to a minute: image uploads and downloads are API requests too.
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers: [registry],
    });
    shared = { registry, http };
  }
  return shared;
}

export function createMetrics(service: string): Metrics {
  const { registry, http } = processMetrics();
  // labels() validates and hashes its arguments on every call; a child per series is looked up once.
  const children = new Map<string, HttpChild>();
  return {
    registry,
    contentType: registry.contentType,
    observeHttpRequest(method, route, status, seconds) {
      const key = `${method} ${status} ${route}`;
      let child = children.get(key);
      if (!child) {
        child = http.labels(service, method, route, String(status));
        children.set(key, child);
      }
      child.observe(seconds);
    },
    render: () => registry.metrics(),
  };
}
