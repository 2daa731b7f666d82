/**
 * Container ACL strings as upstream's swift/common/middleware/acl.py:
 * comma-separated groups (`project:user`, `project:*`, role names) and
 * referrer designations (`.r:*`, `.r:.example.com`, `.r:-host`), plus
 * `.rlistings`.
 */
export function cleanAcl(name: string, value: string): string {
  const lname = name.toLowerCase();
  const out: string[] = [];
  for (const raw of value.split(',')) {
    const v = raw.trim();
    if (!v) continue;
    if (!v.includes(':')) {
      out.push(v);
      continue;
    }
    const idx = v.indexOf(':');
    const first = v.slice(0, idx).trim();
    let second = v.slice(idx + 1).trim();
    if (!first || !first.startsWith('.')) {
      out.push(v);
    } else if (['.r', '.ref', '.referer', '.referrer'].includes(first)) {
      if (lname.includes('write')) throw new Error(`Referrers not allowed in write ACL: '${v}'`);
      let negate = false;
      if (second.startsWith('-')) {
        negate = true;
        second = second.slice(1).trim();
      }
      if (second && second !== '*' && second.startsWith('*')) second = second.slice(1).trim();
      if (!second || second === '.') throw new Error(`No host/domain value after referrer designation in ACL: '${v}'`);
      out.push(`.r:${negate ? '-' : ''}${second}`);
    } else {
      throw new Error(`Unknown designator '${first}' in ACL: '${v}'`);
    }
  }
  return out.join(',');
}

export function parseAcl(acl: string | undefined): { referrers: string[]; groups: string[] } {
  const referrers: string[] = [];
  const groups: string[] = [];
  if (!acl) return { referrers, groups };
  for (const v of acl.split(',')) {
    if (v.startsWith('.r:')) referrers.push(v.slice(3));
    else groups.push(safeDecode(v));
  }
  return { referrers, groups };
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** referrer_allowed: the designations apply in order, the last match wins. */
export function referrerAllowed(referrer: string | undefined, acl: string[]): boolean {
  let allow = false;
  if (!acl.length) return false;
  let host = 'unknown';
  try {
    host = new URL(referrer ?? '').hostname || 'unknown';
  } catch {
    host = 'unknown';
  }
  for (const mhost of acl) {
    let m = mhost;
    let negate = false;
    if (m.startsWith('-')) {
      negate = true;
      m = m.slice(1);
    }
    if (m === '*' || m === host || (m.startsWith('.') && host.endsWith(m))) allow = !negate;
  }
  return allow;
}
