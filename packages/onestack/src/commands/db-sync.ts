import { migrationStatus } from '@onestack/core/db/index.ts';
import { serviceLogger, syncDatabase } from '../runtime.ts';
import { SERVICES, serviceByName } from '../services.ts';
import { loadSettings } from '../settings.ts';

/** Applies pending migrations of one service or all (`onestack db sync [SERVICE]`). */
export async function dbSync(service: string | undefined, opts: { configFile?: string }): Promise<void> {
  const settings = loadSettings(opts.configFile);
  const defs = service ? [serviceByName(service)] : SERVICES;
  for (const def of defs) {
    const db = await syncDatabase(settings, def, serviceLogger(settings, def.name));
    try {
      const st = await migrationStatus(db, def.name, [...def.migrations]);
      console.log(`${def.name}: database at version ${st.current} (latest ${st.latest})`);
    } finally {
      await db.close();
    }
  }
}
