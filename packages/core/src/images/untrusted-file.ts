/**
 * The check every service runs before QEMU or qemu-img opens a disk image a user
 * supplied (Nova's image cache, Cinder's volumes from images): the streaming format
 * inspector over the whole file, then `qemu-img info` under limits as the declared
 * format. Glance runs the same two steps on upload (image-data.ts); this is the
 * file-on-disk form of it, stricter about formats because the caller is about to
 * open the content as a disk.
 */
import { createReadStream } from 'node:fs';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ExecLogger } from '../exec/privileged-exec.ts';
import { createInspector, qemuImgInfo, type DetectedFormat, type Inspection } from './format-inspector.ts';

/** What a file is, by reading all of it through the format inspector. */
export async function inspectFile(path: string): Promise<Inspection> {
  const inspector = createInspector();
  const discard = new Writable({ write: (_chunk, _encoding, done) => done() });
  await pipeline(createReadStream(path), inspector.stream, discard);
  return inspector.result();
}

/**
 * A disk declared raw may hold a partition table or an ISO filesystem, which are raw
 * bytes to QEMU; any other recognised format under a raw label is refused (upstream
 * Nova's image deep inspection does the same).
 */
const RAW_CONTENT = new Set<DetectedFormat>(['raw', 'gpt', 'iso']);

export type UntrustedVerdict = { unsafe: string } | { format: DetectedFormat; virtualSize: number };

/**
 * Whether the file at `path` is safe to open as `diskFormat`, and its virtual size.
 * Content of another format than declared, a qcow2 naming a backing or data file, a
 * VMDK pointing at other files, QED, or content qemu-img cannot read within its
 * limits: `unsafe` with the reason in words for the user. A missing qemu-img throws.
 */
export async function checkUntrustedFile(path: string, diskFormat: string, opts: { logger: ExecLogger; timeoutMs?: number }): Promise<UntrustedVerdict> {
  const inspection = await inspectFile(path);
  if (inspection.unsafe) return { unsafe: inspection.unsafe };
  const matches = diskFormat === 'raw' ? RAW_CONTENT.has(inspection.format) : inspection.format === diskFormat;
  if (!matches) return { unsafe: `declared ${diskFormat} but the content is ${inspection.format}` };
  const info = await qemuImgInfo(path, diskFormat, opts);
  if (info.unsafe) return { unsafe: info.unsafe };
  return { format: inspection.format, virtualSize: info.virtualSize ?? inspection.virtualSize ?? inspection.size };
}
