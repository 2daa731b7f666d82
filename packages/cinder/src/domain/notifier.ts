import type { Logger } from 'pino';
import type { Bus } from '@onestack/core/bus/bus.ts';
import type { RequestContext } from '@onestack/core/context.ts';

/** Volume, snapshot and backup notifications as upstream's volume_utils sends them (publisher volume.<host>), for Ceilometer. */
export class CinderNotifier {
  constructor(
    private readonly bus: Pick<Bus, 'notify'> | undefined,
    private readonly host: string,
    private readonly logger: Logger,
  ) {}

  send(eventType: string, payload: Record<string, unknown>, ctx?: RequestContext, priority: 'INFO' | 'ERROR' = 'INFO'): void {
    if (!this.bus) return;
    const publisher = eventType.startsWith('snapshot.') ? 'snapshot' : eventType.startsWith('backup.') ? 'backup' : 'volume';
    this.bus
      .notify({ eventType, publisherId: `${publisher}.${this.host}`, priority, payload, ctx })
      .catch((err: unknown) => this.logger.warn({ err, event_type: eventType }, 'notification failed'));
  }
}
