/**
 * Config drives: an ISO 9660 image labelled `config-2` holding the same documents as
 * the metadata service (openstack/latest/meta_data.json, user_data,
 * network_data.json …), built with genisoimage (Rock Ridge + Joliet, as upstream's
 * `mkisofs -r -J`). The caller (the compute manager) decides the content; this only
 * lays it out, refusing paths that would escape the drive.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, normalize } from 'node:path';
import { positional, runCommand, type ExecLogger } from '@onestack/core/exec/privileged-exec.ts';
import { DriverError } from './driver.ts';

export const CONFIG_DRIVE_LABEL = 'config-2';
const SEGMENT = /^[A-Za-z0-9_.-]+$/;

function checkPath(rel: string): string {
  const n = normalize(rel);
  if (n !== rel || rel.startsWith('/') || rel.split('/').some((s) => !SEGMENT.test(s) || s === '..' || s === '.')) {
    throw new DriverError(`invalid config drive path ${JSON.stringify(rel)}`);
  }
  return rel;
}

export async function buildConfigDrive(
  files: Record<string, string | Uint8Array>,
  outPath: string,
  opts: { logger: ExecLogger; tmpDir?: string },
): Promise<void> {
  const paths = Object.keys(files).map(checkPath);
  const root = await mkdtemp(join(opts.tmpDir ?? tmpdir(), 'onestack-configdrive-'));
  try {
    for (const rel of paths) {
      const file = join(root, rel);
      await mkdir(dirname(file), { recursive: true });
      await writeFile(file, files[rel]);
    }
    await runCommand(
      'genisoimage',
      ['-quiet', '-o', positional(outPath), '-V', CONFIG_DRIVE_LABEL, '-r', '-J', '-input-charset', 'utf-8', '-publisher', 'onestack', positional(root)],
      { logger: opts.logger, timeoutMs: 60_000 },
    );
  } catch (err) {
    await rm(outPath, { force: true });
    throw err;
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}
