/**
 * A streaming multipart/form-data reader (upstream's
 * iter_multipart_mime_documents + parse_mime_headers): parts come one at a
 * time, each body an async iterable that must be read (or skipped) before
 * the next part; only a delimiter's worth of bytes is ever held back.
 */

export class MimeInvalid extends Error {}

const MAX_HEADER_BYTES = 8192;

export interface MimePart {
  /** Header names lower-cased. */
  headers: Record<string, string>;
  body: AsyncIterable<Buffer>;
}

/** `type; a=b; c="d"` → the type and its parameters (parse_content_disposition). */
export function parseDisposition(value: string): { type: string; attrs: Record<string, string> } {
  const semi = value.indexOf(';');
  const type = (semi < 0 ? value : value.slice(0, semi)).trim().toLowerCase();
  const attrs: Record<string, string> = {};
  const re = /;\s*([^\s=;]+)\s*=\s*("((?:[^"\\]|\\.)*)"|[^;]*)/g;
  for (const m of value.matchAll(re)) attrs[m[1].toLowerCase()] = m[3] !== undefined ? m[3].replace(/\\(.)/g, '$1') : m[2].trim();
  return { type, attrs };
}

export async function* multipartParts(source: AsyncIterable<Buffer | string>, boundary: string): AsyncGenerator<MimePart> {
  const it = source[Symbol.asyncIterator]();
  let buf: Buffer = Buffer.alloc(0);
  let eof = false;
  const fill = async (): Promise<boolean> => {
    if (eof) return false;
    const n = await it.next();
    if (n.done) {
      eof = true;
      return false;
    }
    buf = Buffer.concat([buf, Buffer.isBuffer(n.value) ? n.value : Buffer.from(n.value)]);
    return true;
  };
  const start = Buffer.from(`--${boundary}`);
  while (buf.length < start.length + 2 && (await fill()));
  if (!buf.subarray(0, start.length).equals(start)) throw new MimeInvalid('invalid starting boundary');
  buf = buf.subarray(start.length);
  const delim = Buffer.from(`\r\n--${boundary}`);
  for (;;) {
    // After a boundary: "--" ends the document, anything else up to CRLF is padding.
    while (buf.length < 2 && (await fill()));
    if (buf.subarray(0, 2).toString() === '--' || buf.length === 0) return;
    let eol: number;
    while ((eol = buf.indexOf('\r\n')) < 0 && (await fill()));
    if (eol < 0) return;
    buf = buf.subarray(eol + 2);
    let headerText: string;
    for (;;) {
      // A part may have no headers at all: its body starts right after the boundary line.
      if (buf.length >= 2 && buf[0] === 0x0d && buf[1] === 0x0a) {
        headerText = '';
        buf = buf.subarray(2);
        break;
      }
      const end = buf.indexOf('\r\n\r\n');
      if (end >= 0) {
        headerText = buf.subarray(0, end).toString('utf8');
        buf = buf.subarray(end + 4);
        break;
      }
      if (buf.length > MAX_HEADER_BYTES) throw new MimeInvalid('MIME headers too long');
      if (!(await fill())) throw new MimeInvalid('unexpected end of MIME headers');
    }
    const headers: Record<string, string> = {};
    for (const line of headerText.split('\r\n')) {
      const c = line.indexOf(':');
      if (c > 0) headers[line.slice(0, c).trim().toLowerCase()] = line.slice(c + 1).trim();
    }
    let done = false;
    async function* body(): AsyncGenerator<Buffer> {
      for (;;) {
        const at = buf.indexOf(delim);
        if (at >= 0) {
          const out = buf.subarray(0, at);
          buf = buf.subarray(at + delim.length);
          done = true;
          if (out.length) yield out;
          return;
        }
        // Keep what could be the start of a delimiter split across chunks.
        const safe = buf.length - (delim.length - 1);
        if (safe > 0) {
          const out = buf.subarray(0, safe);
          buf = buf.subarray(safe);
          yield out;
        }
        if (!(await fill())) {
          // A document cut short ends its last part where the bytes end, as upstream's reader does.
          const rest = buf;
          buf = Buffer.alloc(0);
          done = true;
          if (rest.length) yield rest;
          return;
        }
      }
    }
    yield { headers, body: body() };
    // Whatever the consumer left unread (or abandoned midway) is skipped to the next boundary.
    if (!done) for await (const _ of body());
  }
}
