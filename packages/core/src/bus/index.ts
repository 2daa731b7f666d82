import { AmqpBus, type AmqpBusOptions } from './amqp-bus.ts';
import type { Bus } from './bus.ts';
import { InProcessBus, LocalBroker } from './in-process-bus.ts';

export {
  BusClosed,
  DEFAULT_MAX_DELIVERIES,
  DEFAULT_RETRY_DELAY_MS,
  DEFAULT_TIMEOUT_MS,
  ENVELOPE_VERSION,
  NOTIFICATIONS_TOPIC,
  RemoteError,
  RpcTimeout,
  type Bus,
  type BusLogger,
  type BusOptions,
  type CallOptions,
  type CastOptions,
  type FanoutOptions,
  type Notification,
  type NotificationEnvelope,
  type NotificationHandler,
  type NotifyInput,
  type Priority,
  type RpcHandler,
  type RpcHandlers,
  type RpcServer,
  type SubscribeOptions,
  type Subscription,
} from './bus.ts';
export { AmqpBus, type AmqpBusOptions } from './amqp-bus.ts';
export { InProcessBus, LocalBroker, type InProcessBusOptions } from './in-process-bus.ts';

/**
 * Opens the bus a transport URL names: `inprocess://[name]` (one broker per name per
 * process, shared by every bus opened on it) or `amqp://`, `amqps://` and oslo's
 * `rabbit://` for RabbitMQ.
 */
export async function openBus(url: string, opts: AmqpBusOptions = {}): Promise<Bus> {
  const parsed = new URL(url);
  switch (parsed.protocol) {
    case 'inprocess:':
      return new InProcessBus({
        defaultTimeoutMs: opts.defaultTimeoutMs,
        logger: opts.logger,
        broker: LocalBroker.shared(parsed.hostname),
      });
    case 'amqp:':
    case 'amqps:':
      return AmqpBus.open(url, opts);
    case 'rabbit:':
      return AmqpBus.open(`amqp:${url.slice('rabbit:'.length)}`, opts);
    default:
      throw new TypeError(`Unsupported message bus URL scheme ${parsed.protocol}`);
  }
}
