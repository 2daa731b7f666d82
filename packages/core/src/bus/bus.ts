/**
 * RPC and notifications between services and hosts, modelled on oslo.messaging:
 * one interface, an in-process implementation for the all-in-one and an AMQP one
 * for scale-out. Everything that crosses the bus is JSON, in both implementations,
 * so code that works on one works on the other.
 */
import { randomUUID } from 'node:crypto';
import pino from 'pino';
import type { RequestContext } from '../context.ts';
import { ApiError, type ErrorCode } from '../errors.ts';

/**
 * Server-side RPC method. `args` is whatever the caller sent, after a JSON round trip;
 * typed `any` so that services can annotate their handlers' argument types.
 */
export type RpcHandler = (args: any, ctx: RequestContext | undefined) => Promise<unknown>;
export type RpcHandlers = Record<string, RpcHandler>;

export interface CastOptions {
  /** Send to the server on this host (queue `topic.host`) instead of any server of the topic. */
  host?: string;
  ctx?: RequestContext;
}

export interface CallOptions extends CastOptions {
  /** Defaults to the bus's defaultTimeoutMs (60 s, oslo's rpc_response_timeout). */
  timeoutMs?: number;
}

export interface FanoutOptions {
  ctx?: RequestContext;
}

export interface RpcServer {
  /** Stops consuming; handlers already running still answer. */
  stop(): Promise<void>;
}

/** oslo.messaging's notification priorities. */
export type Priority = 'AUDIT' | 'DEBUG' | 'INFO' | 'WARN' | 'ERROR' | 'CRITICAL' | 'SAMPLE';

export const NOTIFICATIONS_TOPIC = 'notifications';

/** Same value as oslo.messaging's `oslo.version`, so the envelope reads like upstream's. */
export const ENVELOPE_VERSION = '2.0';

export interface NotifyInput {
  eventType: string;
  publisherId: string;
  priority: Priority;
  payload: unknown;
  ctx?: RequestContext;
  /** Defaults to NOTIFICATIONS_TOPIC. */
  topic?: string;
}

/** A notification as consumers see it: upstream's field names. */
export interface Notification {
  message_id: string;
  /** ISO 8601, UTC. */
  timestamp: string;
  event_type: string;
  publisher_id: string;
  priority: Priority;
  payload: unknown;
  ctx?: RequestContext;
}

/** What travels on the wire: the message is itself a JSON string, as in oslo. */
export interface NotificationEnvelope {
  'oslo.version': string;
  'oslo.message': string;
}

export type NotificationHandler = (notification: Notification) => Promise<void>;

export interface SubscribeOptions {
  /** Glob patterns (`*` matches anything, dots included); others are acknowledged and skipped. */
  eventTypes?: string[];
  /** Deliveries before a notification whose handler keeps failing is dropped. Default 5. */
  maxDeliveries?: number;
  /** Pause before a failed notification is handed back for redelivery. Default 1000 ms. */
  retryDelayMs?: number;
}

export interface Subscription {
  stop(): Promise<void>;
}

export interface Bus {
  /**
   * Serves `handlers` on the topic's shared queue (load-balanced among servers), on
   * `topic.host` when a host is given, and on the topic's fan-out (every server).
   */
  serve(topic: string, host: string | undefined, handlers: RpcHandlers): Promise<RpcServer>;
  /** Rejects with RpcTimeout, RemoteError, or an ApiError re-created from the remote one. */
  call<T = unknown>(topic: string, method: string, args: unknown, opts?: CallOptions): Promise<T>;
  /** Resolves once the message is accepted for delivery (broker-confirmed on AMQP). */
  cast(topic: string, method: string, args: unknown, opts?: CastOptions): Promise<void>;
  /** Casts to every server of the topic. */
  fanout(topic: string, method: string, args: unknown, opts?: FanoutOptions): Promise<void>;
  notify(input: NotifyInput): Promise<Notification>;
  /**
   * Every pool (a consumer group, one queue) gets each notification of the topic once;
   * subscribers sharing a pool share its notifications. The handler's success
   * acknowledges; a failure leads to redelivery up to maxDeliveries.
   */
  subscribe(topic: string, pool: string, handler: NotificationHandler, opts?: SubscribeOptions): Promise<Subscription>;
  close(): Promise<void>;
}

/** The part of a pino logger the bus uses. */
export interface BusLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

let sharedLogger: BusLogger | undefined;

/** One logger for every bus opened without one, created on first use. */
export function defaultLogger(): BusLogger {
  sharedLogger ??= pino({ name: 'bus' });
  return sharedLogger;
}

export interface BusOptions {
  defaultTimeoutMs?: number;
  logger?: BusLogger;
}

export const DEFAULT_TIMEOUT_MS = 60_000;
export const DEFAULT_MAX_DELIVERIES = 5;
export const DEFAULT_RETRY_DELAY_MS = 1000;

export class RpcTimeout extends Error {
  constructor(
    readonly topic: string,
    readonly method: string,
    readonly timeoutMs: number,
  ) {
    super(`Timed out after ${timeoutMs} ms waiting for a reply to ${topic}.${method}`);
    this.name = 'RpcTimeout';
  }
}

/** A remote handler failed with something other than an ApiError. */
export class RemoteError extends Error {
  readonly remoteName: string;
  readonly code?: string;
  readonly status?: number;

  constructor(wire: WireError) {
    super(wire.message);
    this.name = 'RemoteError';
    this.remoteName = wire.name;
    this.code = wire.code;
    this.status = wire.status;
  }
}

export class BusClosed extends Error {
  constructor() {
    super('The message bus is closed');
    this.name = 'BusClosed';
  }
}

interface WireError {
  name: string;
  message: string;
  code?: string;
  status?: number;
  /** ApiError.type, present only when the remote error was an ApiError. */
  type?: string;
  api?: true;
}

interface RpcRequest {
  method: string;
  args: unknown;
  ctx?: RequestContext;
}

type RpcReply = { result: unknown } | { error: WireError };

// Hosts may be FQDNs. Topics have neither dots nor colons, which separate them from the
// host in `topic.host` and from the pool in a notification queue's `topic:pool`.
const TOPIC = /^[A-Za-z0-9_-]+$/;
const HOST = /^[A-Za-z0-9_.:-]+$/;

export function checkTopic(topic: string): void {
  if (!TOPIC.test(topic)) throw new TypeError(`Invalid bus topic ${JSON.stringify(topic)}`);
}

export function checkHost(host: string | undefined): void {
  if (host !== undefined && !HOST.test(host)) throw new TypeError(`Invalid bus host ${JSON.stringify(host)}`);
}

export function checkPool(pool: string): void {
  if (!HOST.test(pool)) throw new TypeError(`Invalid notification pool ${JSON.stringify(pool)}`);
}

export function encodeRequest(method: string, args: unknown, ctx: RequestContext | undefined): string {
  const req: RpcRequest = { method, args, ctx };
  return JSON.stringify(req);
}

/** Runs the handler a request names and returns the reply body; never throws. */
export async function handleRequest(handlers: RpcHandlers, body: string): Promise<string> {
  let reply: RpcReply;
  try {
    const req = JSON.parse(body) as RpcRequest;
    const handler = Object.hasOwn(handlers, req.method) ? handlers[req.method] : undefined;
    reply = handler
      ? { result: await handler(req.args, req.ctx) }
      : { error: { name: 'NoSuchMethod', message: `Endpoint does not support RPC method ${req.method}` } };
  } catch (err) {
    reply = { error: encodeError(err) };
  }
  try {
    return JSON.stringify(reply);
  } catch (err) {
    return JSON.stringify({ error: encodeError(err) });
  }
}

/** Returns the remote result or throws what the remote handler threw. */
export function decodeReply(body: string): unknown {
  const reply = JSON.parse(body) as RpcReply;
  if ('error' in reply) throw decodeError(reply.error);
  return reply.result;
}

function encodeError(err: unknown): WireError {
  if (err instanceof ApiError) {
    return { name: err.name, message: err.message, code: err.code, status: err.status, type: err.type, api: true };
  }
  if (err instanceof Error) {
    const { code, status } = err as { code?: unknown; status?: unknown };
    return {
      name: err.name,
      message: err.message,
      code: typeof code === 'string' || typeof code === 'number' ? String(code) : undefined,
      status: typeof status === 'number' ? status : undefined,
    };
  }
  return { name: 'Error', message: String(err) };
}

function decodeError(wire: WireError): Error {
  if (wire.api && wire.code !== undefined) {
    return new ApiError(wire.code as ErrorCode, wire.message, { status: wire.status, type: wire.type });
  }
  return new RemoteError(wire);
}

export function encodeNotification(input: NotifyInput): { body: string; notification: Notification } {
  const notification: Notification = {
    message_id: randomUUID(),
    timestamp: new Date().toISOString(),
    event_type: input.eventType,
    publisher_id: input.publisherId,
    priority: input.priority,
    payload: input.payload,
    ctx: input.ctx,
  };
  const envelope: NotificationEnvelope = { 'oslo.version': ENVELOPE_VERSION, 'oslo.message': JSON.stringify(notification) };
  return { body: JSON.stringify(envelope), notification: JSON.parse(envelope['oslo.message']) as Notification };
}

export function decodeNotification(body: string): Notification {
  const envelope = JSON.parse(body) as Partial<NotificationEnvelope>;
  if (envelope['oslo.version'] !== ENVELOPE_VERSION || typeof envelope['oslo.message'] !== 'string') {
    throw new Error(`Unsupported notification envelope version ${String(envelope['oslo.version'])}`);
  }
  return JSON.parse(envelope['oslo.message']) as Notification;
}

/** fnmatch-style filter, as ceilometer's event_type definitions use. */
export function eventTypeFilter(patterns: string[] | undefined): (eventType: string) => boolean {
  if (!patterns) return () => true;
  const res = patterns.map(
    (p) => new RegExp(`^${p.replace(/[.+^${}()|[\]\\]/g, '\\$&').replaceAll('*', '.*').replaceAll('?', '.')}$`),
  );
  return (eventType) => res.some((re) => re.test(eventType));
}
