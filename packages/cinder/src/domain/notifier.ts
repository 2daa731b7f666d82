import type { Logger } from 'pino';
import type { Bus } from '@onestack/core/bus/bus.ts';
import type { RequestContext } from '@onestack/core/context.ts';

const PUBLISHERS = new Set(['snapshot', 'backup', 'group', 'group_snapshot']);

/** Volume, snapshot, backup and group notifications as upstream's volume_utils sends them (publisher volume.<host>, group.<host> …), for Ceilometer. */
export class CinderNotifier {
  constructor(
    private readonly bus: Pick<Bus, 'notify'> | undefined,
    private readonly host: string,
    private readonly logger: Logger,
  ) {}

  send(eventType: string, payload: Record<string, unknown>, ctx?: RequestContext, priority: 'INFO' | 'ERROR' = 'INFO'): void {
    if (!this.bus) return;
    const prefix = eventType.split('.')[0];
    const publisher = PUBLISHERS.has(prefix) ? prefix : 'volume';
    this.bus
      .notify({ eventType, publisherId: `${publisher}.${this.host}`, priority, payload, ctx })
      .catch((err: unknown) => this.logger.warn({ err, event_type: eventType }, 'notification failed'));
  }
}
