/**
 * The bus over RabbitMQ (AMQP 0-9-1), laid out like oslo.messaging's rabbit driver:
 * RPC on a topic exchange with a shared queue per topic and a queue per topic and
 * host, fan-out on a direct exchange with one exclusive queue per server, replies on
 * an exclusive queue per client matched by correlation id, and notifications on their
 * own topic exchange with one durable queue per pool. Notifications whose handler
 * keeps failing are dead-lettered to `onestack_notifications_dead`, which keeps
 * nothing unless an operator binds a queue to it.
 *
 * The connection is recovered after losing it (amqplib's recovery does the backoff);
 * every (re)connection re-declares the topology and consumers, then re-sends what was
 * published while disconnected or never confirmed.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import {
  connect,
  type Channel,
  type ChannelModel,
  type ConfirmChannel,
  type ConsumeMessage,
  type Options,
  type RecoveringChannelModel,
} from 'amqplib';
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

export interface AmqpBusOptions extends BusOptions {
  /** Prepended to every exchange and queue name, so that test runs sharing a broker stay apart. */
  prefix?: string;
  /** Delete this bus's queues, and the exchanges once unused, at close: for test-scoped prefixes. */
  cleanupOnClose?: boolean;
  /** Connection retries before open() gives up; once connected, reconnecting never gives up. Default 5. */
  initialRetries?: number;
}

const RECONNECT_INITIAL_DELAY_MS = 100;
const RECONNECT_MAX_DELAY_MS = 5000;
/** Bounds how many notifications a subscriber works on at once. */
const NOTIFY_PREFETCH = 16;
/** How long close() waits for buffered and unconfirmed publishes to be confirmed. */
const CLOSE_FLUSH_MS = 2000;
/** Failure counts kept per subscription; the oldest are forgotten beyond this. */
const MAX_TRACKED_FAILURES = 1000;

interface Live {
  model: ChannelModel;
  pub: ConfirmChannel;
}

interface Outgoing {
  exchange: string;
  routingKey: string;
  content: Buffer;
  props: Options.Publish;
  done: Promise<void>;
  resolve(): void;
  reject(err: Error): void;
  /** A call that timed out: not worth sending after a reconnection. */
  cancelled: boolean;
}

interface Consumer {
  /** Declares its queues and starts consuming on the channel given. */
  declare(ch: Channel): Promise<void>;
  /** Set once declared; cleared when stopped. */
  channel?: Channel;
}

interface Subscriber {
  handler: NotificationHandler;
  accepts(eventType: string): boolean;
  maxDeliveries: number;
  retryDelayMs: number;
  pool: string;
  /** Failed deliveries by message id (the broker does not count requeues on classic queues). */
  failures: Map<string, number>;
}

interface Waiter {
  resolve(value: unknown): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

export class AmqpBus implements Bus {
  /** Resolves once connected; rejects if the broker cannot be reached within initialRetries. */
  static async open(url: string, opts: AmqpBusOptions = {}): Promise<AmqpBus> {
    const bus = new AmqpBus(opts);
    const conn = await connect(url, {
      clientProperties: { connection_name: `${bus.prefix}onestack ${hostname()}:${process.pid}` },
      recovery: {
        initialDelay: RECONNECT_INITIAL_DELAY_MS,
        maxDelay: RECONNECT_MAX_DELAY_MS,
        initialMaxRetries: opts.initialRetries ?? 5,
        waitForConnect: false,
        setup: (model: ChannelModel) => bus.setup(model),
      },
    });
    // Connection errors are logged by the listener setup() puts on each connection.
    conn.on('error', () => {});
    conn.on('disconnect', (err: Error) => bus.log.warn({ err }, 'AMQP connection lost; reconnecting'));
    conn.on('connect-failed', (err: Error) => bus.log.warn({ err }, 'AMQP connection attempt failed'));
    conn.on('connect', () => {
      if (bus.connectionCount > 1) bus.log.info({}, 'AMQP connection re-established');
    });
    bus.conn = conn;
    try {
      await conn.waitForConnect();
    } catch (err) {
      await conn.close();
      throw err;
    }
    return bus;
  }

  private readonly prefix: string;
  private readonly cleanupOnClose: boolean;
  private readonly defaultTimeoutMs: number;
  private readonly log: BusLogger;
  private readonly ex: { rpc: string; fanout: string; notifications: string; dead: string };
  private readonly replyQueue: string;
  private conn!: RecoveringChannelModel;
  private live: Live | null = null;
  private connectionCount = 0;
  /** Published while disconnected, or lost with a channel before the broker confirmed them. */
  private outbox: Outgoing[] = [];
  private readonly unsettled = new Set<Outgoing>();
  private onDrained?: () => void;
  private readonly waiters = new Map<string, Waiter>();
  private readonly consumers = new Set<Consumer>();
  /** Queues this bus declared, for cleanupOnClose. */
  private readonly ownQueues = new Set<string>();
  private readonly retryTimers = new Set<NodeJS.Timeout>();
  /** No new calls, casts, notifications or consumers. */
  private closing = false;
  /** Past the final flush: nothing more is sent. */
  private finished = false;
  private closed?: Promise<void>;

  private constructor(opts: AmqpBusOptions) {
    this.prefix = opts.prefix ?? '';
    this.cleanupOnClose = opts.cleanupOnClose ?? false;
    this.defaultTimeoutMs = opts.defaultTimeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.log = opts.logger ?? defaultLogger();
    const p = this.prefix;
    this.ex = {
      rpc: `${p}onestack`,
      fanout: `${p}onestack_fanout`,
      notifications: `${p}onestack_notifications`,
      dead: `${p}onestack_notifications_dead`,
    };
    this.replyQueue = `${p}reply_${randomUUID()}`;
  }

  get connected(): boolean {
    return this.live !== null;
  }

  /** Successful connections so far, the first included. */
  get connections(): number {
    return this.connectionCount;
  }

  async serve(topic: string, host: string | undefined, handlers: RpcHandlers): Promise<RpcServer> {
    this.assertOpen();
    checkTopic(topic);
    checkHost(host);
    const keys = host === undefined ? [topic] : [topic, routingKey(topic, host)];
    // Named once, so a reconnection re-declares the same queue (as oslo's `topic_fanout_<uuid>`).
    const fanoutQueue = `${this.prefix}${topic}_fanout_${randomUUID()}`;
    const consumer: Consumer = {
      declare: async (ch) => {
        const queues: string[] = [];
        for (const key of keys) {
          const queue = this.prefix + key;
          await ch.assertQueue(queue, { durable: true });
          this.ownQueues.add(queue);
          await ch.bindQueue(queue, this.ex.rpc, key);
          queues.push(queue);
        }
        await ch.assertQueue(fanoutQueue, { exclusive: true, autoDelete: true });
        this.ownQueues.add(fanoutQueue);
        await ch.bindQueue(fanoutQueue, this.ex.fanout, topic);
        for (const queue of [...queues, fanoutQueue]) {
          await ch.consume(queue, (msg) => this.onRequest(ch, handlers, msg));
        }
      },
    };
    await this.register(consumer);
    return { stop: () => this.unregister(consumer) };
  }

  call<T = unknown>(topic: string, method: string, args: unknown, opts: CallOptions = {}): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.assertOpen();
      checkTopic(topic);
      checkHost(opts.host);
      const body = encodeRequest(method, args, opts.ctx);
      const id = randomUUID();
      const timeoutMs = opts.timeoutMs ?? this.defaultTimeoutMs;
      const out = this.enqueue(this.ex.rpc, routingKey(topic, opts.host), body, {
        correlationId: id,
        replyTo: this.replyQueue,
        // A request still queued when its caller has given up is not worth running.
        expiration: String(timeoutMs),
      });
      const timer = setTimeout(() => {
        this.waiters.delete(id);
        this.cancel(out);
        reject(new RpcTimeout(topic, method, timeoutMs));
      }, timeoutMs);
      this.waiters.set(id, { resolve: resolve as (value: unknown) => void, reject, timer });
      out.done.catch((err: Error) => this.settleWaiter(id, () => reject(err)));
    });
  }

  async cast(topic: string, method: string, args: unknown, opts: CastOptions = {}): Promise<void> {
    this.assertOpen();
    checkTopic(topic);
    checkHost(opts.host);
    const body = encodeRequest(method, args, opts.ctx);
    await this.enqueue(this.ex.rpc, routingKey(topic, opts.host), body, { persistent: true }).done;
  }

  async fanout(topic: string, method: string, args: unknown, opts: FanoutOptions = {}): Promise<void> {
    this.assertOpen();
    checkTopic(topic);
    const body = encodeRequest(method, args, opts.ctx);
    await this.enqueue(this.ex.fanout, topic, body, {}).done;
  }

  async notify(input: NotifyInput): Promise<Notification> {
    this.assertOpen();
    const topic = input.topic ?? NOTIFICATIONS_TOPIC;
    checkTopic(topic);
    const { body, notification } = encodeNotification(input);
    await this.enqueue(this.ex.notifications, `${topic}.${input.priority.toLowerCase()}`, body, {
      persistent: true,
      messageId: notification.message_id,
    }).done;
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
    const sub: Subscriber = {
      handler,
      accepts: eventTypeFilter(opts.eventTypes),
      maxDeliveries: opts.maxDeliveries ?? DEFAULT_MAX_DELIVERIES,
      retryDelayMs: opts.retryDelayMs ?? DEFAULT_RETRY_DELAY_MS,
      pool,
      failures: new Map(),
    };
    const queue = `${this.prefix}${topic}:${pool}`;
    const consumer: Consumer = {
      declare: async (ch) => {
        await ch.prefetch(NOTIFY_PREFETCH);
        await ch.assertQueue(queue, { durable: true, deadLetterExchange: this.ex.dead });
        this.ownQueues.add(queue);
        await ch.bindQueue(queue, this.ex.notifications, `${topic}.*`);
        await ch.consume(queue, (msg) => this.onNotification(ch, sub, msg));
      },
    };
    await this.register(consumer);
    return { stop: () => this.unregister(consumer) };
  }

  close(): Promise<void> {
    this.closing = true;
    this.closed ??= this.shutdown();
    return this.closed;
  }

  private async shutdown(): Promise<void> {
    // Stop taking work first: what this bus had not acknowledged goes back to its queues.
    for (const consumer of this.consumers) await closeQuietly(consumer.channel);
    if (this.live && this.unsettled.size > 0) await this.drained(CLOSE_FLUSH_MS);
    this.finished = true;
    for (const out of [...this.unsettled]) this.settle(out, new BusClosed());
    this.outbox = [];
    for (const timer of this.retryTimers) clearTimeout(timer);
    this.retryTimers.clear();
    for (const waiter of this.waiters.values()) {
      clearTimeout(waiter.timer);
      waiter.reject(new BusClosed());
    }
    this.waiters.clear();
    if (this.cleanupOnClose && this.live) await this.deleteTopology(this.live.model);
    this.live = null;
    await this.conn.close();
  }

  /** Runs on every (re)connection, before amqplib reports it connected. */
  private async setup(model: ChannelModel): Promise<void> {
    model.on('error', (err: Error) => this.log.warn({ err }, 'AMQP connection error'));
    const pub = await model.createConfirmChannel();
    pub.on('error', (err: Error) => this.log.warn({ err }, 'AMQP channel error'));
    await pub.assertExchange(this.ex.rpc, 'topic', { durable: true });
    await pub.assertExchange(this.ex.fanout, 'direct', { durable: true });
    await pub.assertExchange(this.ex.notifications, 'topic', { durable: true });
    await pub.assertExchange(this.ex.dead, 'topic', { durable: true });
    // Same name on every connection, so replies to calls sent before a reconnection still find it.
    await pub.assertQueue(this.replyQueue, { exclusive: true, autoDelete: true, durable: false });
    await pub.consume(this.replyQueue, (msg) => msg && this.onReply(msg), { noAck: true });
    for (const consumer of this.consumers) await this.attach(consumer, model);
    model.once('close', () => {
      if (this.live?.model === model) this.live = null;
    });
    pub.once('close', () => this.recoverChannel(model, 'publishing channel'));
    this.live = { model, pub };
    this.connectionCount += 1;
    for (const out of this.outbox.splice(0)) this.send(out);
  }

  private async register(consumer: Consumer): Promise<void> {
    this.consumers.add(consumer);
    const live = this.live;
    // While disconnected, the next setup() attaches it.
    if (!live) return;
    try {
      await this.attach(consumer, live.model);
    } catch (err) {
      // Lost the connection meanwhile: setup() on the next one attaches it.
      if (this.live?.model !== live.model) return;
      this.consumers.delete(consumer);
      throw err;
    }
  }

  private async unregister(consumer: Consumer): Promise<void> {
    this.consumers.delete(consumer);
    const ch = consumer.channel;
    consumer.channel = undefined;
    await closeQuietly(ch);
  }

  private async attach(consumer: Consumer, model: ChannelModel): Promise<void> {
    const ch = await model.createChannel();
    ch.on('error', (err: Error) => this.log.warn({ err }, 'AMQP channel error'));
    ch.once('close', () => {
      if (consumer.channel === ch && this.consumers.has(consumer)) this.recoverChannel(model, 'consuming channel');
    });
    await consumer.declare(ch);
    consumer.channel = ch;
  }

  /**
   * A channel closed on a connection that is still up (a queue deleted under a consumer,
   * an exchange deleted under the publisher): reconnecting re-declares everything.
   * Deferred, because channels also close just before the connection they belong to.
   */
  private recoverChannel(model: ChannelModel, what: string): void {
    setImmediate(() => {
      if (this.closing || this.live?.model !== model) return;
      this.log.warn({}, `AMQP ${what} closed unexpectedly; reconnecting`);
      this.live = null;
      void closeQuietly(model);
    });
  }

  private onRequest(ch: Channel, handlers: RpcHandlers, msg: ConsumeMessage | null): void {
    if (!msg) {
      void closeQuietly(ch);
      return;
    }
    // At most once, as oslo.messaging: a call whose reply is lost times out instead of running twice.
    ackQuietly(ch, msg);
    const { replyTo, correlationId } = msg.properties as { replyTo?: string; correlationId?: string };
    void handleRequest(handlers, msg.content.toString()).then((reply) => {
      if (replyTo === undefined || correlationId === undefined || this.finished) return;
      this.enqueue('', replyTo, reply, { correlationId }).done.catch((err: unknown) => {
        if (!(err instanceof BusClosed)) this.log.warn({ err }, 'Could not send an RPC reply');
      });
    });
  }

  private onReply(msg: ConsumeMessage): void {
    const id = msg.properties.correlationId as string | undefined;
    if (id === undefined) return;
    const waiter = this.waiters.get(id);
    if (!waiter) return;
    this.settleWaiter(id, () => {
      try {
        waiter.resolve(decodeReply(msg.content.toString()));
      } catch (err) {
        waiter.reject(err as Error);
      }
    });
  }

  private settleWaiter(id: string, settle: () => void): void {
    const waiter = this.waiters.get(id);
    if (!waiter) return;
    this.waiters.delete(id);
    clearTimeout(waiter.timer);
    settle();
  }

  private onNotification(ch: Channel, sub: Subscriber, msg: ConsumeMessage | null): void {
    if (!msg) {
      void closeQuietly(ch);
      return;
    }
    let notification: Notification;
    try {
      notification = decodeNotification(msg.content.toString());
    } catch (err) {
      this.log.error({ err, pool: sub.pool }, 'Dead-lettering undecodable notification');
      nackQuietly(ch, msg, false);
      return;
    }
    if (!sub.accepts(notification.event_type)) {
      ackQuietly(ch, msg);
      return;
    }
    const id = notification.message_id;
    Promise.resolve()
      .then(() => sub.handler(notification))
      .then(
        () => {
          sub.failures.delete(id);
          ackQuietly(ch, msg);
        },
        (err: unknown) => {
          const failures = (sub.failures.get(id) ?? 0) + 1;
          sub.failures.delete(id);
          if (failures >= sub.maxDeliveries) {
            this.log.error(
              { err, pool: sub.pool, event_type: notification.event_type, message_id: id },
              `Dead-lettering notification after ${failures} failed deliveries`,
            );
            nackQuietly(ch, msg, false);
            return;
          }
          // Re-inserted so that the map's order is by last failure, oldest first.
          sub.failures.set(id, failures);
          if (sub.failures.size > MAX_TRACKED_FAILURES) sub.failures.delete(sub.failures.keys().next().value!);
          const timer = setTimeout(() => {
            this.retryTimers.delete(timer);
            nackQuietly(ch, msg, true);
          }, sub.retryDelayMs);
          this.retryTimers.add(timer);
        },
      );
  }

  private enqueue(exchange: string, routingKey: string, body: string, props: Options.Publish): Outgoing {
    if (this.finished) throw new BusClosed();
    let resolve!: () => void;
    let reject!: (err: Error) => void;
    const done = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const out: Outgoing = {
      exchange,
      routingKey,
      content: Buffer.from(body),
      props: { contentType: 'application/json', ...props },
      done,
      resolve,
      reject,
      cancelled: false,
    };
    this.unsettled.add(out);
    this.send(out);
    return out;
  }

  private send(out: Outgoing): void {
    if (out.cancelled) {
      this.settle(out);
      return;
    }
    const live = this.live;
    if (!live) {
      this.outbox.push(out);
      return;
    }
    try {
      live.pub.publish(out.exchange, out.routingKey, out.content, out.props, (err: Error | null) => {
        if (!err) this.settle(out);
        else if (err.message === 'message nacked') {
          this.settle(out, new Error(`The broker refused a message for ${out.exchange} ${out.routingKey}`));
        }
        // The channel went before the broker confirmed: the message may or may not have
        // arrived, so send it again (at least once; notifications carry a message_id).
        else if (this.unsettled.has(out)) this.send(out);
      });
    } catch {
      // The channel is closed and this.live not yet cleared.
      this.outbox.push(out);
    }
  }

  private cancel(out: Outgoing): void {
    out.cancelled = true;
    const i = this.outbox.indexOf(out);
    if (i >= 0) {
      this.outbox.splice(i, 1);
      this.settle(out);
    }
  }

  private settle(out: Outgoing, err?: Error): void {
    if (!this.unsettled.delete(out)) return;
    if (err) out.reject(err);
    else out.resolve();
    if (this.unsettled.size === 0) this.onDrained?.();
  }

  private drained(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.onDrained = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.onDrained = done;
    });
  }

  private async deleteTopology(model: ChannelModel): Promise<void> {
    const ops: ((ch: Channel) => Promise<unknown>)[] = [
      ...[...this.ownQueues].map((queue) => (ch: Channel) => ch.deleteQueue(queue, { ifUnused: true })),
      ...Object.values(this.ex).map((exchange) => (ch: Channel) => ch.deleteExchange(exchange, { ifUnused: true })),
    ];
    let ch: Channel | undefined;
    for (const op of ops) {
      try {
        if (!ch) {
          ch = await model.createChannel();
          // Still in use by another bus with the same prefix: the broker refuses and closes the channel.
          ch.on('error', () => {});
        }
        await op(ch);
      } catch {
        ch = undefined;
      }
    }
    await closeQuietly(ch);
  }

  private assertOpen(): void {
    if (this.closing) throw new BusClosed();
  }
}

function routingKey(topic: string, host: string | undefined): string {
  return host === undefined ? topic : `${topic}.${host}`;
}

// A channel that is gone with its connection cannot acknowledge; the broker redelivers instead.
function ackQuietly(ch: Channel, msg: ConsumeMessage): void {
  try {
    ch.ack(msg);
  } catch {
    /* see above */
  }
}

function nackQuietly(ch: Channel, msg: ConsumeMessage, requeue: boolean): void {
  try {
    ch.nack(msg, false, requeue);
  } catch {
    /* see ackQuietly */
  }
}

async function closeQuietly(closable: { close(): Promise<void> } | undefined): Promise<void> {
  try {
    await closable?.close();
  } catch {
    /* already closed */
  }
}
