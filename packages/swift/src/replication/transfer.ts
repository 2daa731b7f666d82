/**
 * onestack's replacement for the rsync that upstream's object replicator
 * runs: two backend verbs on the object server, on /<device>/<partition>,
 * sent as POST + X-Backend-Verb (Node's parser refuses unknown methods).
 *
 *   REPLICATE-LIST  body: JSON ["<suffix>", …]
 *     → 200 {"<suffix>": {"<hash>": ["<timestamp>.data", …]}}: the files that
 *       still decide each object's state (obsolete ones are cleaned up first).
 *   REPLICATE-PUSH  body: a stream of frames, each
 *       "<suffix>/<hash>/<timestamp>.<data|meta|ts> <size>\n" + <size> bytes
 *     the file exactly as it lies on the sender's disk (body + metadata
 *     trailer). Each is written under <device>/tmp, its trailer checked,
 *     fdatasync'ed and renamed into its hash dir with the dirs fsynced (as a
 *     PUT), then the hash dir is cleaned up and the suffix invalidated.
 *     → 200 {"written": n}. A stream cut short leaves the completed files
 *     (each is whole and durable) and discards the partial one.
 *
 * The sender never ships a .data whose body no longer matches its ETag: it
 * hashes while streaming and aborts the request on a mismatch.
 */
export const LIST_VERB = 'REPLICATE-LIST';
export const PUSH_VERB = 'REPLICATE-PUSH';

export const FILE_NAME_RE = /^\d{10}\.\d{5}(_[0-9a-f]{16})?\.(data|meta|ts)$/;
export const SUFFIX_RE = /^[0-9a-f]{3}$/;
export const HASH_RE = /^[0-9a-f]{32}$/;

/** What a REPLICATE-LIST answers: suffix → hash → live file names. */
export type SuffixListing = Record<string, Record<string, string[]>>;

export function frameHeader(suffix: string, hash: string, name: string, size: number): Buffer {
  return Buffer.from(`${suffix}/${hash}/${name} ${size}\n`, 'utf8');
}

export function parseFrameHeader(line: string): { suffix: string; hash: string; name: string; size: number } {
  const m = /^([0-9a-f]{3})\/([0-9a-f]{32})\/(\S+) (\d+)$/.exec(line);
  if (!m || !m[2].endsWith(m[1]) || !FILE_NAME_RE.test(m[3])) throw new Error(`bad frame header ${JSON.stringify(line.slice(0, 200))}`);
  return { suffix: m[1], hash: m[2], name: m[3], size: Number(m[4]) };
}
