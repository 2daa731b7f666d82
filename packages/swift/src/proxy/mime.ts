import { readFileSync } from 'node:fs';

/**
 * Content types by extension, as Python's mimetypes.guess_type (which upstream
 * uses) learns them: from /etc/mime.types when the host has it, a few
 * common ones otherwise.
 */
const FALLBACK: Record<string, string> = {
  txt: 'text/plain',
  html: 'text/html',
  htm: 'text/html',
  css: 'text/css',
  js: 'text/javascript',
  json: 'application/json',
  xml: 'application/xml',
  png: 'image/png',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  gif: 'image/gif',
  svg: 'image/svg+xml',
  pdf: 'application/pdf',
  zip: 'application/zip',
  gz: 'application/gzip',
  tar: 'application/x-tar',
  iso: 'application/x-iso9660-image',
};

let table: Map<string, string> | undefined;

function load(): Map<string, string> {
  const m = new Map<string, string>(Object.entries(FALLBACK));
  try {
    for (const line of readFileSync('/etc/mime.types', 'utf8').split('\n')) {
      if (!line || line.startsWith('#')) continue;
      const [type, ...exts] = line.split(/\s+/).filter(Boolean);
      for (const e of exts) m.set(e.toLowerCase(), type);
    }
  } catch {
    // No system table: the fallback serves.
  }
  // Python's own table overrides a few of the system's choices.
  m.set('txt', 'text/plain');
  m.set('js', 'text/javascript');
  return m;
}

/** Content type of a name, or undefined when the extension is unknown. */
export function guessType(name: string): string | undefined {
  table ??= load();
  const base = name.slice(name.lastIndexOf('/') + 1);
  const dot = base.lastIndexOf('.');
  if (dot < 0) return undefined;
  const ext = base.slice(dot + 1).toLowerCase();
  return table.get(ext);
}
