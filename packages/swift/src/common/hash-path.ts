import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/**
 * The cluster's secret salt for path hashes (upstream's `[swift-hash]` in
 * swift.conf). Every proxy and storage server of one cluster must share it:
 * it decides partitions and on-disk object directories, so changing it
 * orphans all stored data.
 */
export interface HashPathConf {
  prefix: Buffer;
  suffix: Buffer;
}

/** Where onestack keeps the cluster's swift.conf: beside the rings, so an upstream server given this swift_dir reads the same salt. */
export function swiftDir(stateDir: string): string {
  return join(stateDir, 'swift');
}

export function swiftConfPath(stateDir: string): string {
  return join(swiftDir(stateDir), 'swift.conf');
}

/**
 * Reads `[swift-hash]` from a swift.conf-style file. Upstream reads the file
 * as latin1 and re-encodes, so the salt is the file's raw bytes; we do the same.
 */
export function readHashPathConf(file: string): HashPathConf {
  const text = readFileSync(file, 'latin1');
  let section = '';
  const values: Record<string, string> = {};
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      section = header[1].trim();
      continue;
    }
    const eq = line.search(/[=:]/);
    if (section === 'swift-hash' && eq > 0) values[line.slice(0, eq).trim()] = line.slice(eq + 1).trim();
  }
  const prefix = values.swift_hash_path_prefix ?? '';
  const suffix = values.swift_hash_path_suffix ?? '';
  if (!prefix && !suffix) throw new Error(`[swift-hash]: both swift_hash_path_suffix and swift_hash_path_prefix are missing from ${file}`);
  return { prefix: Buffer.from(prefix, 'latin1'), suffix: Buffer.from(suffix, 'latin1') };
}

export function formatSwiftConf(conf: HashPathConf): string {
  return (
    '[swift-hash]\n' +
    `swift_hash_path_prefix = ${conf.prefix.toString('latin1')}\n` +
    `swift_hash_path_suffix = ${conf.suffix.toString('latin1')}\n` +
    '\n[storage-policy:0]\nname = Policy-0\ndefault = yes\n'
  );
}

/**
 * The cluster's salt, generated once per cloud by whoever first starts Swift
 * in this state directory and read back ever after.
 */
export function loadOrCreateHashPathConf(stateDir: string): HashPathConf {
  const path = swiftConfPath(stateDir);
  if (existsSync(path)) return readHashPathConf(path);
  const conf: HashPathConf = {
    prefix: Buffer.from(randomBytes(16).toString('hex'), 'latin1'),
    suffix: Buffer.from(randomBytes(16).toString('hex'), 'latin1'),
  };
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  // Written aside and renamed so a concurrent starter never reads half a file; 'wx' on the temp keeps two writers apart.
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, formatSwiftConf(conf), { mode: 0o600, flag: 'wx' });
  if (existsSync(path)) return readHashPathConf(path);
  renameSync(tmp, path);
  return conf;
}

type Name = string | Buffer;

const bytes = (n: Name): Buffer => (typeof n === 'string' ? Buffer.from(n, 'utf8') : n);

/**
 * md5(prefix + '/' + account[/container[/object]] + suffix), as upstream's
 * hash_path. Empty container/object count as absent, as in upstream.
 */
export function hashPathDigest(conf: HashPathConf, account: Name, container?: Name, object?: Name): Buffer {
  if (object?.length && !container?.length) throw new Error('container is required if object is provided');
  const parts: Buffer[] = [bytes(account)];
  if (container?.length) parts.push(bytes(container));
  if (object?.length) parts.push(bytes(object));
  const h = createHash('md5');
  h.update(conf.prefix);
  h.update('/');
  parts.forEach((p, i) => {
    if (i) h.update('/');
    h.update(p);
  });
  h.update(conf.suffix);
  return h.digest();
}

export function hashPath(conf: HashPathConf, account: Name, container?: Name, object?: Name): string {
  return hashPathDigest(conf, account, container, object).toString('hex');
}
