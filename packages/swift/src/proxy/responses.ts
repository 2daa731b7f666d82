import { Readable } from 'node:stream';
import type { Headers, SwiftRequest, SwiftResponse } from './types.ts';

/** swob's status titles and the explanations its error pages carry. */
const STATUS: Record<number, [string, string?]> = {
  200: ['OK'],
  201: ['Created'],
  202: ['Accepted', 'The request is accepted for processing.'],
  204: ['No Content'],
  206: ['Partial Content'],
  301: ['Moved Permanently'],
  302: ['Found'],
  304: ['Not Modified'],
  307: ['Temporary Redirect'],
  400: ['Bad Request', 'The server could not comply with the request since it is either malformed or otherwise incorrect.'],
  401: ['Unauthorized', 'This server could not verify that you are authorized to access the document you requested.'],
  402: ['Payment Required', 'Access was denied for financial reasons.'],
  403: ['Forbidden', 'Access was denied to this resource.'],
  404: ['Not Found', 'The resource could not be found.'],
  405: ['Method Not Allowed', 'The method is not allowed for this resource.'],
  406: ['Not Acceptable', 'The resource is not available in a format acceptable to your browser.'],
  408: ['Request Timeout', 'The server has waited too long for the request to be sent by the client.'],
  409: ['Conflict', 'There was a conflict when trying to complete your request.'],
  410: ['Gone', 'This resource is no longer available.'],
  411: ['Length Required', 'Content-Length header required.'],
  412: ['Precondition Failed', 'A precondition for this request was not met.'],
  413: ['Request Entity Too Large', 'The body of your request was too large for this server.'],
  414: ['Request URI Too Long', 'The request URI was too long for this server.'],
  415: ['Unsupported Media Type', 'The request media type is not supported by this server.'],
  416: ['Requested Range Not Satisfiable', 'The Range requested is not available.'],
  417: ['Expectation Failed', 'Expectation failed.'],
  422: ['Unprocessable Entity', 'Unable to process the contained instructions'],
  429: ['Too Many Requests', 'The server is processing too many requests.'],
  499: ['Client Disconnect', 'The client was disconnected during request.'],
  500: ['Internal Error', 'The server has either erred or is incapable of performing the requested operation.'],
  501: ['Not Implemented', "The requested method is not implemented by this server."],
  502: ['Bad Gateway', 'Bad gateway.'],
  503: ['Service Unavailable', 'The server is currently unavailable. Please try again at a later time.'],
  504: ['Gateway Timeout', 'A timeout has occurred speaking to a backend server.'],
  507: ['Insufficient Storage', 'There was not enough space to save the resource.'],
};

export function statusTitle(status: number): string {
  return STATUS[status]?.[0] ?? 'Unknown';
}

/**
 * A response as swob builds it: an error without a body gets the little HTML
 * page upstream sends; an explicit body is sent as plain text.
 */
export function respond(status: number, body?: string | Buffer, headers: Headers = {}): SwiftResponse {
  const h: Headers = { ...headers };
  let b: string | Buffer | undefined = body;
  if (b === undefined && status >= 400) {
    const [title, explanation] = STATUS[status] ?? ['Unknown', ''];
    b = `<html><h1>${title}</h1><p>${explanation ?? ''}</p></html>`;
    h['content-type'] ??= 'text/html; charset=UTF-8';
  } else if (b !== undefined) {
    h['content-type'] ??= 'text/plain; charset=UTF-8';
  }
  if (b === undefined && status !== 204 && status !== 304) h['content-type'] ??= 'text/html; charset=UTF-8';
  return { status, headers: h, body: b };
}

/** A plain-text error body, as constraints.py sends (content_type='text/plain'). */
export function plainError(status: number, message: string): SwiftResponse {
  return { status, headers: { 'content-type': 'text/plain' }, body: message };
}

export function isSuccess(s: number): boolean {
  return s >= 200 && s < 300;
}

/** Drains and discards a response body we will not forward (frees the backend socket). */
export function discard(body: SwiftResponse['body']): void {
  if (body instanceof Readable) body.resume();
}

/** Reads a whole body (small ones only: listings, manifests, JSON). */
export async function readBody(body: SwiftResponse['body'] | SwiftRequest['body'], limit = 64 * 1024 * 1024): Promise<Buffer> {
  if (body === undefined) return Buffer.alloc(0);
  if (typeof body === 'string') return Buffer.from(body, 'utf8');
  if (Buffer.isBuffer(body)) return body;
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of body) {
    const b = Buffer.isBuffer(c) ? c : Buffer.from(c as string);
    n += b.length;
    if (n > limit) {
      body.destroy();
      throw Object.assign(new Error('body too large'), { tooLarge: true });
    }
    chunks.push(b);
  }
  return Buffer.concat(chunks);
}
