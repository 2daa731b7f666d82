import type { Logger } from 'pino';
import type { Bus } from '@onestack/core/bus/bus.ts';
import type { RequestContext } from '@onestack/core/context.ts';

export type NotificationSink = Pick<Bus, 'notify'>;

/**
 * Resource notifications as upstream's NotifierHook sends them:
 * `<resource>.create.start` with the request body, `<resource>.create.end`
 * with `{<resource>: view}`, likewise `.update.*` and `.delete.*`
 * (`.delete.end` carries `<resource>_id` and the deleted view), publisher
 * `network.<host>`.
 */
export class Notifier {
  constructor(
    private readonly sink: NotificationSink | undefined,
    private readonly host: string,
    private readonly logger: Logger,
  ) {}

  send(eventType: string, payload: unknown, ctx?: RequestContext): void {
    if (!this.sink) return;
    // Notifications never fail the API call that caused them, as upstream.
    this.sink
      .notify({ eventType, publisherId: `network.${this.host}`, priority: 'INFO', payload, ctx })
      .catch((err: unknown) => this.logger.warn({ err, event_type: eventType }, 'notification failed'));
  }

  start(member: string, action: 'create' | 'update' | 'delete', payload: unknown, ctx?: RequestContext): void {
    this.send(`${member}.${action}.start`, payload, ctx);
  }

  end(member: string, action: 'create' | 'update', view: unknown, ctx?: RequestContext): void {
    this.send(`${member}.${action}.end`, { [member]: view }, ctx);
  }

  deleted(member: string, id: string, view: unknown, ctx?: RequestContext): void {
    this.send(`${member}.delete.end`, { [`${member}_id`]: id, [member]: view }, ctx);
  }
}
