import { SERVICES } from '../services.ts';
import { loadSettings, serviceUrl } from '../settings.ts';
import { runningPid } from '../state.ts';

export interface Health {
  status: 'up' | 'down';
  version?: string;
  pid?: number;
  rss?: number;
}

export async function healthOf(url: string): Promise<Health> {
  try {
    const res = await fetch(`${url}/healthcheck`, { headers: { accept: 'application/json' }, signal: AbortSignal.timeout(2000) });
    if (!res.ok) return { status: 'down' };
    const body = (await res.json()) as { version?: string; pid?: number; memory?: { rss?: number } };
    return { status: 'up', version: body.version, pid: body.pid, rss: body.memory?.rss };
  } catch {
    return { status: 'down' };
  }
}

export async function status(opts: { configFile?: string; json?: boolean }): Promise<boolean> {
  const settings = loadSettings(opts.configFile);
  const rows = await Promise.all(
    SERVICES.map(async (s) => ({ service: s.name, url: serviceUrl(settings, s.name), ...(await healthOf(serviceUrl(settings, s.name))) })),
  );
  if (opts.json) {
    console.log(JSON.stringify({ pid: runningPid(settings.stateDir) ?? null, services: rows }, null, 2));
  } else {
    // The service column fits the longest name (swift_replicator), with a space after it.
    const w = Math.max(...rows.map((r) => r.service.length), 'SERVICE'.length) + 2;
    console.log(`${'SERVICE'.padEnd(w)}${'STATUS'.padEnd(8)}${'URL'.padEnd(28)}${'VERSION'.padEnd(10)}${'PID'.padEnd(9)}MEMORY`);
    for (const r of rows) {
      const mem = r.rss ? `${(r.rss / 1048576).toFixed(0)} MiB` : '-';
      console.log(`${r.service.padEnd(w)}${r.status.padEnd(8)}${r.url.padEnd(28)}${(r.version ?? '-').padEnd(10)}${String(r.pid ?? '-').padEnd(9)}${mem}`);
    }
  }
  return rows.every((r) => r.status === 'up');
}
