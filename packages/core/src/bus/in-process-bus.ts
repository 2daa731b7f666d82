import { randomUUID } from 'node:crypto';
import {
  BusClosed,
  checkHost,
  checkPool,
  checkTopic,
  decodeNotification,
  decodeReply,
  defaultLogger,
  DEFAULT_MAX_DELIVERIES,
  DEFAULT_RETRY_DELAY_MS,
  DEFAULT_TIMEOUT_MS,
  encodeNotification,
  encodeRequest,
  eventTypeFilter,
  handleRequest,
  NOTIFICATIONS_TOPIC,
  RpcTimeout,
  type Bus,
  type BusLogger,
  type BusOptions,
  type CallOptions,
  type CastOptions,
  type FanoutOptions,
  type Notification,
  type NotificationHandler,
  type NotifyInput,
  type RpcHandlers,
  type RpcServer,
  type SubscribeOptions,
  type Subscription,
} from './bus.ts';

interface LocalMessage {
  body: string;
  /** Present on calls: where the server's reply goes. */
  reply?: (body: string) => void;
  deliveries: number;
  /** On notifications: what pools filter on, so that a pool that does not take one never decodes it. */
  eventType?: string;
}

type LocalConsumer = (msg: LocalMessage) => void;

/**
 * A queue as a broker keeps one: it outlives its consumers and holds messages
 * until one is attached; consumers take turns.
 */
class LocalQueue {
  private readonly messages: LocalMessage[] = [];
  private readonly consumers: LocalConsumer[] = [];
  private next = 0;
  private scheduled = false;

  push(msg: LocalMessage, front = false): void {
    if (front) this.messages.unshift(msg);
    else this.messages.push(msg);
    this.schedule();
  }

  consume(consumer: LocalConsumer): () => void {
    this.consumers.push(consumer);
    this.schedule();
    return () => {
      const i = this.consumers.indexOf(consumer);
      if (i >= 0) this.consumers.splice(i, 1);
    };
  }

  // Delivery is never synchronous with publishing, so callers observe the same ordering as with a broker.
  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      while (this.messages.length > 0 && this.consumers.length > 0) {
        this.next %= this.consumers.length;
        const consumer = this.consumers[this.next++];
        consumer(this.messages.shift()!);
      }
    });
  }
}

/** The in-process stand-in for RabbitMQ: every InProcessBus on the same broker can talk to the others. */
export class LocalBroker {
  private static readonly named = new Map<string, LocalBroker>();

  /** One broker per name per process, so services opening `inprocess://` separately share it. */
  static shared(name = ''): LocalBroker {
    let broker = LocalBroker.named.get(name);
    if (!broker) {
      broker = new LocalBroker();
      LocalBroker.named.set(name, broker);
    }
    return broker;
  }

  /** RPC queues by name: `topic` and `topic.host`. */
  readonly rpcQueues = new Map<string, LocalQueue>();
  /** Per topic, one queue per server. */
  readonly fanouts = new Map<string, Set<LocalQueue>>();
  /** Per notification topic, one queue per pool. */
  readonly pools = new Map<string, Map<string, LocalQueue>>();

  rpcQueue(name: string): LocalQueue {
    let q = this.rpcQueues.get(name);
    if (!q) {
      q = new LocalQueue();
      this.rpcQueues.set(name, q);
    }
    return q;
  }

  fanoutSet(topic: string): Set<LocalQueue> {
    let set = this.fanouts.get(topic);
    if (!set) {
      set = new Set();
      this.fanouts.set(topic, set);
    }
    return set;
  }

  poolQueue(topic: string, pool: string): LocalQueue {
    let pools = this.pools.get(topic);
    if (!pools) {
      pools = new Map();
      this.pools.set(topic, pools);
    }
    let q = pools.get(pool);
    if (!q) {
      q = new LocalQueue();
      pools.set(pool, q);
    }
    return q;
  }
}

export interface InProcessBusOptions extends BusOptions {
  /** Defaults to a broker of its own. */
  broker?: LocalBroker;
}

interface Waiter {
  resolve(value: unknown): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

export class InProcessBus implements Bus {
  private readonly broker: LocalBroker;
  private readonly defaultTimeoutMs: number;
  private readonly log: BusLogger;
  private readonly waiters = new Map<string, Waiter>();
  private readonly stops = new Set<() => void>();
  /** Failed notifications waiting out their retry delay, with where they go back to. */
  private readonly retries = new Map<NodeJS.Timeout, { queue: LocalQueue; msg: LocalMessage }>();
  private closed = false;

  constructor(opts: InProcessBusOptions = {}) {
    this.broker = opts.broker ?? new LocalBroker();
    this.defaultTimeoutMs = opts.defaultTimeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.log = opts.logger ?? defaultLogger();
  }

  async serve(topic: string, host: string | undefined, handlers: RpcHandlers): Promise<RpcServer> {
    this.assertOpen();
    checkTopic(topic);
    checkHost(host);
    const consumer: LocalConsumer = (msg) => {
      void handleRequest(handlers, msg.body).then((reply) => msg.reply?.(reply));
    };
    const fanoutQueue = new LocalQueue();
    const fanouts = this.broker.fanoutSet(topic);
    fanouts.add(fanoutQueue);
    const cancels = [
      this.broker.rpcQueue(topic).consume(consumer),
      fanoutQueue.consume(consumer),
      ...(host === undefined ? [] : [this.broker.rpcQueue(`${topic}.${host}`).consume(consumer)]),
    ];
    const stop = () => {
      for (const cancel of cancels) cancel();
      fanouts.delete(fanoutQueue);
      this.stops.delete(stop);
    };
    this.stops.add(stop);
    return { stop: async () => stop() };
  }

  call<T = unknown>(topic: string, method: string, args: unknown, opts: CallOptions = {}): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.assertOpen();
      checkTopic(topic);
      checkHost(opts.host);
      const body = encodeRequest(method, args, opts.ctx);
      const id = randomUUID();
      const timeoutMs = opts.timeoutMs ?? this.defaultTimeoutMs;
      const timer = setTimeout(() => {
        this.waiters.delete(id);
        reject(new RpcTimeout(topic, method, timeoutMs));
      }, timeoutMs);
      this.waiters.set(id, { resolve: resolve as (value: unknown) => void, reject, timer });
      const reply = (replyBody: string) => setImmediate(() => this.onReply(id, replyBody));
      this.broker.rpcQueues.get(opts.host === undefined ? topic : `${topic}.${opts.host}`)?.push({ body, reply, deliveries: 0 });
    });
  }

  async cast(topic: string, method: string, args: unknown, opts: CastOptions = {}): Promise<void> {
    this.assertOpen();
    checkTopic(topic);
    checkHost(opts.host);
    const body = encodeRequest(method, args, opts.ctx);
    this.broker.rpcQueues.get(opts.host === undefined ? topic : `${topic}.${opts.host}`)?.push({ body, deliveries: 0 });
  }

  async fanout(topic: string, method: string, args: unknown, opts: FanoutOptions = {}): Promise<void> {
    this.assertOpen();
    checkTopic(topic);
    const body = encodeRequest(method, args, opts.ctx);
    for (const q of this.broker.fanouts.get(topic) ?? []) q.push({ body, deliveries: 0 });
  }

  async notify(input: NotifyInput): Promise<Notification> {
    this.assertOpen();
    const topic = input.topic ?? NOTIFICATIONS_TOPIC;
    checkTopic(topic);
    const { body, notification } = encodeNotification(input);
    for (const q of this.broker.pools.get(topic)?.values() ?? []) q.push({ body, deliveries: 0, eventType: notification.event_type });
    return notification;
  }

  async subscribe(
    topic: string,
    pool: string,
    handler: NotificationHandler,
    opts: SubscribeOptions = {},
  ): Promise<Subscription> {
    this.assertOpen();
    checkTopic(topic);
    checkPool(pool);
    const accepts = eventTypeFilter(opts.eventTypes);
    const maxDeliveries = opts.maxDeliveries ?? DEFAULT_MAX_DELIVERIES;
    const retryDelayMs = opts.retryDelayMs ?? DEFAULT_RETRY_DELAY_MS;
    const queue = this.broker.poolQueue(topic, pool);
    const consumer: LocalConsumer = (msg) => {
      let notification: Notification;
      try {
        if (msg.eventType !== undefined && !accepts(msg.eventType)) return;
        notification = decodeNotification(msg.body);
      } catch (err) {
        this.log.error({ err, pool }, 'Dropping undecodable notification');
        return;
      }
      if (!accepts(notification.event_type)) return;
      msg.deliveries += 1;
      Promise.resolve()
        .then(() => handler(notification))
        .catch((err: unknown) => {
          if (msg.deliveries >= maxDeliveries) {
            this.log.error(
              { err, pool, event_type: notification.event_type, message_id: notification.message_id },
              `Dropping notification after ${msg.deliveries} failed deliveries`,
            );
            return;
          }
          const timer = setTimeout(() => {
            this.retries.delete(timer);
            queue.push(msg, true);
          }, retryDelayMs);
          this.retries.set(timer, { queue, msg });
        });
    };
    const cancel = queue.consume(consumer);
    const stop = () => {
      cancel();
      this.stops.delete(stop);
    };
    this.stops.add(stop);
    return { stop: async () => stop() };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const stop of [...this.stops]) stop();
    // A broker would requeue what this connection had not acknowledged.
    for (const [timer, { queue, msg }] of this.retries) {
      clearTimeout(timer);
      queue.push(msg, true);
    }
    this.retries.clear();
    for (const waiter of this.waiters.values()) {
      clearTimeout(waiter.timer);
      waiter.reject(new BusClosed());
    }
    this.waiters.clear();
  }

  private onReply(id: string, body: string): void {
    const waiter = this.waiters.get(id);
    if (!waiter) return;
    this.waiters.delete(id);
    clearTimeout(waiter.timer);
    try {
      waiter.resolve(decodeReply(body));
    } catch (err) {
      waiter.reject(err as Error);
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new BusClosed();
  }
}
