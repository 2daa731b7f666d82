import type { Logger } from 'pino';
import type { Bus } from '@onestack/core/bus/bus.ts';

/**
 * Identity notifications in upstream's "basic" format: event type
 * `identity.<resource>.<operation>` and payload `{resource_info: <id>}`, which
 * is what Ceilometer and other listeners consume.
 */
export type NotificationSink = Pick<Bus, 'notify'>;

export type Operation = 'created' | 'updated' | 'deleted' | 'disabled';

export class IdentityNotifier {
  constructor(
    private readonly sink: NotificationSink | undefined,
    private readonly hostname: string,
    private readonly logger: Logger,
  ) {}

  emit(resource: string, operation: Operation, id: string, extra: Record<string, unknown> = {}): void {
    if (!this.sink) return;
    const n = {
      eventType: `identity.${resource}.${operation}`,
      publisherId: `identity.${this.hostname}`,
      priority: 'INFO' as const,
      payload: { resource_info: id, ...extra },
    };
    // Notifications never fail the API call that caused them, as upstream.
    this.sink.notify(n).catch((err: unknown) => this.logger.warn({ err, event_type: n.eventType }, 'notification failed'));
  }
}
