import type { FastifyInstance } from 'fastify';
import type { Metrics } from '../metrics.ts';

/**
 * Operational endpoints every service process answers, unauthenticated as
 * oslo.middleware's healthcheck: `/healthcheck` (plain "OK", or details as JSON
 * when asked, which `onestack status` reads) and Prometheus `/metrics`.
 */
export function registerOpsRoutes(app: FastifyInstance, o: { service: string; version: string; metrics?: Metrics }): void {
  app.get('/healthcheck', { config: { public: true } }, async (req, reply) => {
    if (!String(req.headers.accept ?? '').includes('application/json')) {
      reply.type('text/plain');
      return 'OK';
    }
    const mem = process.memoryUsage();
    return {
      service: o.service,
      status: 'up',
      version: o.version,
      pid: process.pid,
      uptime_s: Math.round(process.uptime()),
      memory: { rss: mem.rss, heap_used: mem.heapUsed },
    };
  });
  const metrics = o.metrics;
  if (metrics) {
    app.get('/metrics', { config: { public: true } }, async (_req, reply) => {
      reply.type(metrics.contentType);
      return metrics.render();
    });
  }
}
