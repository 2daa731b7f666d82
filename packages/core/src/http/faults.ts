import { STATUS_CODES } from 'node:http';
import type { ApiError } from '../errors.ts';

/**
 * Each upstream service renders errors its own way; clients (openstacksdk,
 * python-*client) parse these bodies to build their exception messages, so the
 * shape must match upstream exactly.
 */
export type FaultFormat = 'keystone' | 'compute' | 'neutron' | 'placement' | 'glance' | 'swift';

export interface RenderedFault {
  contentType: string;
  body: string;
}

// nova/api/openstack/wsgi.py Fault._fault_names; cinder uses the same table.
const COMPUTE_FAULT_NAMES: Record<number, string> = {
  400: 'badRequest',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'itemNotFound',
  405: 'badMethod',
  409: 'conflictingRequest',
  413: 'overLimit',
  415: 'badMediaType',
  429: 'overLimit',
  501: 'notImplemented',
  503: 'serviceUnavailable',
};

// Neutron's error `type` is the exception class name; a generic one per status
// is used when the thrower did not name one.
const NEUTRON_DEFAULT_TYPES: Record<number, string> = {
  400: 'BadRequest',
  401: 'NotAuthorized',
  403: 'PolicyNotAuthorized',
  404: 'NotFound',
  409: 'Conflict',
  412: 'PreconditionFailed',
  413: 'OverQuota',
  503: 'ServiceUnavailable',
};

export function statusTitle(status: number): string {
  return STATUS_CODES[status] ?? 'Error';
}

export function renderFault(format: FaultFormat, err: ApiError, requestId: string): RenderedFault {
  const { status, message } = err;
  switch (format) {
    case 'keystone':
      return json({ error: { code: status, title: statusTitle(status), message } });
    case 'compute':
      return json({ [COMPUTE_FAULT_NAMES[status] ?? 'computeFault']: { code: status, message } });
    case 'neutron':
      return json({
        NeutronError: { type: err.type ?? NEUTRON_DEFAULT_TYPES[status] ?? 'NeutronError', message, detail: '' },
      });
    case 'placement':
      return json({
        errors: [{ status, title: statusTitle(status), detail: message, request_id: requestId, code: err.type }],
      });
    case 'glance':
      return { contentType: 'text/html; charset=UTF-8', body: webobHtml(status, message) };
    case 'swift':
      return {
        contentType: 'text/html; charset=UTF-8',
        body: `<html><h1>${statusTitle(status)}</h1><p>${escapeHtml(message)}</p></html>`,
      };
  }
}

/** Where webob's status titles are older than Node's. */
const WEBOB_TITLES: Record<number, string> = { 413: 'Request Entity Too Large', 416: 'Request Range Not Satisfiable' };

/**
 * The page webob renders for an HTTPException raised with an explanation,
 * as Glance's faults are: clients (openstacksdk) strip the tags line by line
 * and join what is left, so "400 Bad Request: <message>" is what users read.
 */
function webobHtml(status: number, message: string): string {
  const title = `${status} ${WEBOB_TITLES[status] ?? statusTitle(status)}`;
  return `<html>\n <head>\n  <title>${title}</title>\n </head>\n <body>\n  <h1>${title}</h1>\n  ${escapeHtml(message)}<br /><br />\n\n\n\n </body>\n</html>`;
}

function json(body: unknown): RenderedFault {
  return { contentType: 'application/json', body: JSON.stringify(body) };
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
