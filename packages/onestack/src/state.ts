import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** The pid file of a running `onestack up`, so down and status find it. */
export function pidPath(stateDir: string): string {
  return join(stateDir, 'onestack.pid');
}

export function runningPid(stateDir: string): number | undefined {
  const path = pidPath(stateDir);
  if (!existsSync(path)) return undefined;
  const pid = Number(readFileSync(path, 'utf8').trim());
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  try {
    process.kill(pid, 0);
    return pid;
  } catch {
    return undefined; // stale: the process is gone
  }
}

export function writePid(stateDir: string): void {
  writeFileSync(pidPath(stateDir), `${process.pid}\n`, { mode: 0o600 });
}

export function removePid(stateDir: string): void {
  rmSync(pidPath(stateDir), { force: true });
}
