/**
 * Conversions between JS strings and the "WSGI strings" headers travel as (one
 * latin-1 character per UTF-8 byte), as upstream's wsgi_to_str/str_to_wsgi.
 */
export function wsgiToStr(s: string): string {
  return Buffer.from(s, 'latin1').toString('utf8');
}

export function strToWsgi(s: string): string {
  return Buffer.from(s, 'utf8').toString('latin1');
}

const fatal = new TextDecoder('utf-8', { fatal: true });

/** upstream's check_utf8: valid UTF-8 without NUL. */
export function checkUtf8Bytes(b: Buffer): boolean {
  if (b.includes(0)) return false;
  try {
    fatal.decode(b);
    return true;
  } catch {
    return false;
  }
}

/** Percent-decodes to raw bytes (never throws on bad escapes, as unquote). */
export function unquoteBytes(s: string): Buffer {
  const out: number[] = [];
  const raw = Buffer.from(s, 'latin1');
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i];
    if (c === 0x25 && i + 2 < raw.length + 0 && /^[0-9a-fA-F]{2}$/.test(String.fromCharCode(raw[i + 1], raw[i + 2] ?? 0))) {
      out.push(parseInt(String.fromCharCode(raw[i + 1], raw[i + 2]), 16));
      i += 2;
    } else out.push(c);
  }
  return Buffer.from(out);
}

/** urllib's quote with '/' safe, on the UTF-8 bytes of s. */
export function quote(s: string, safe = '/'): string {
  let out = '';
  for (const b of Buffer.from(s, 'utf8')) {
    const ch = String.fromCharCode(b);
    if (/[A-Za-z0-9_.\-~]/.test(ch) || safe.includes(ch)) out += ch;
    else out += '%' + b.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}
