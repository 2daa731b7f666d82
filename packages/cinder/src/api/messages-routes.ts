import type { FastifyInstance, FastifyRequest } from 'fastify';
import { notFound } from '@onestack/core/errors.ts';
import type { MessageRow } from '../db/schema.ts';
import { MESSAGE_COLUMNS, userMessage, type MessageFilter, type MessagePage, type UserMessages } from '../domain/messages.ts';
import { ISO, callerOf, enforce, mv, projectOf, type ApiDeps } from './context.ts';
import { filtersOf, likeFilters } from './filters.ts';
import { links } from './views.ts';
import { pageOf } from './volume-routes.ts';

const P = '/v3/:project_id';
const SORT_KEYS: ReadonlySet<string> = new Set(MESSAGE_COLUMNS);
const FILTER_KEYS: ReadonlySet<string> = new Set(MESSAGE_COLUMNS.filter((c) => c !== 'created_at' && c !== 'expires_at'));

function messageView(req: FastifyRequest, m: MessageRow) {
  const out: Record<string, unknown> = {
    id: m.id,
    event_id: m.event_id,
    user_message: userMessage(m),
    message_level: m.message_level,
    created_at: ISO(m.created_at),
    guaranteed_until: ISO(m.expires_at),
    request_id: m.request_id,
    links: links(req, m.project_id, 'messages', m.id),
  };
  if (m.resource_type) out.resource_type = m.resource_type;
  if (m.resource_uuid) out.resource_uuid = m.resource_uuid;
  return out;
}

/** User messages (3.3; filters, sort and paging 3.5) as upstream's v3 messages controller. */
export function registerMessageRoutes(app: FastifyInstance, deps: ApiDeps, messages: UserMessages): void {
  const gate = (req: FastifyRequest) => {
    projectOf(deps, req);
    if (!mv(req, '3.3')) throw notFound('The resource could not be found.');
  };
  const messageOf = async (req: FastifyRequest, rule: string) => {
    gate(req);
    const m = await messages.get((req.params as { message_id: string }).message_id, callerOf(deps, req));
    enforce(deps, req, rule, { project_id: m.project_id });
    return m;
  };

  app.get(`${P}/messages`, async (req) => {
    gate(req);
    enforce(deps, req, 'message:get_all');
    const caller = callerOf(deps, req);
    const q = req.query as Record<string, string>;
    // Before 3.5 upstream reads no parameter at all: every message, oldest first.
    let page: MessagePage = { sort: [['created_at', 'asc']], limit: deps.config.maxLimit };
    let filters: Record<string, string> = {};
    let like: Record<string, string> = {};
    if (mv(req, '3.5')) {
      const p = pageOf(deps, q, SORT_KEYS);
      page = { ...p, sort: (p.sort.length ? p.sort : [['created_at', 'desc']]) as MessagePage['sort'] };
      filters = filtersOf(req, caller, q, { resource: 'message', legacy: Object.keys(q), since: {} });
      like = likeFilters(req, filters, [...FILTER_KEYS]);
      for (const k of Object.keys(like)) delete filters[`${k}~`];
      // upstream answers a filter on no column of the model with an empty list.
      if (Object.keys(filters).some((k) => !FILTER_KEYS.has(k))) return { messages: [] };
    }
    const rows = await messages.list(caller, filters as Partial<Record<MessageFilter, string>>, page, like as Partial<Record<MessageFilter, string>>);
    const out: Record<string, unknown> = { messages: rows.map((m) => messageView(req, m)) };
    if (mv(req, '3.5') && rows.length === page.limit && rows.length > 0) {
      const next = new URLSearchParams({ ...q, marker: rows[rows.length - 1].id });
      next.delete('offset');
      out.messages_links = [{ href: `${req.protocol}://${req.headers.host}${req.url.split('?')[0]}?${next}`, rel: 'next' }];
    }
    return out;
  });
  app.get(`${P}/messages/:message_id`, async (req) => ({ message: messageView(req, await messageOf(req, 'message:get')) }));
  app.delete(`${P}/messages/:message_id`, async (req, reply) => {
    await messages.delete(await messageOf(req, 'message:delete'));
    reply.code(204);
    return '';
  });
}
