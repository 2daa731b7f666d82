import { readFile, readdir } from 'node:fs/promises';

/**
 * Whether `pid` is gone or has finished exiting: every thread of it a zombie (state Z
 * or X in /proc/<pid>/task/<tid>/stat). A killed process's main thread can be a zombie
 * while its other threads still run their exit and hold its files and sockets (QEMU,
 * qemu-storage-daemon).
 */
export async function hasExited(pid: number): Promise<boolean> {
  const tids = await readdir(`/proc/${pid}/task`).catch(() => undefined);
  if (tids === undefined) return true;
  for (const tid of tids) {
    const stat = await readFile(`/proc/${pid}/task/${tid}/stat`, 'utf8').catch(() => undefined);
    if (stat === undefined) continue;
    const state = stat.charAt(stat.lastIndexOf(')') + 2);
    if (state !== 'Z' && state !== 'X') return false;
  }
  return true;
}
