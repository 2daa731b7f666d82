import { readFileSync } from 'node:fs';
import { RingBuilder, type BuilderDevice, type BuilderState } from './builder.ts';
import { writeFileAtomic } from './ring-data.ts';

/**
 * The .builder file. Upstream pickles its RingBuilder object, which only
 * Python can read; ours is JSON so any tool can inspect it:
 *
 *   { "format": "onestack-ring-builder", "format_version": 1,
 *     "id", "part_power", "replicas", "min_part_hours", "overload", "version",
 *     "devs": [ {id, region, zone, ip, port, replication_ip, replication_port,
 *               device, weight, meta, parts} | null, … ],
 *     "replica2part2dev": [ base64 of little-endian u16 device ids, one per replica ] | null,
 *     "last_part_moves": base64 of one byte per partition (hours since moved, max 255),
 *     "last_part_moves_epoch": unix seconds those hours count from,
 *     "last_part_gather_start", "remove_devs": [ids], "devs_changed", "dispersion" }
 *
 * Upstream's swift-ring-builder cannot open it; the ring.gz it produces is
 * upstream's format and interchangeable.
 */
export const BUILDER_FORMAT = 'onestack-ring-builder';

const u16ToB64 = (a: Uint16Array): string => {
  const b = Buffer.alloc(a.length * 2);
  for (let i = 0; i < a.length; i++) b.writeUInt16LE(a[i], 2 * i);
  return b.toString('base64');
};

const b64ToU16 = (s: string): Uint16Array => {
  const b = Buffer.from(s, 'base64');
  const a = new Uint16Array(b.length / 2);
  for (let i = 0; i < a.length; i++) a[i] = b.readUInt16LE(2 * i);
  return a;
};

export function serializeBuilder(b: RingBuilder): string {
  const s = b.state;
  return (
    JSON.stringify(
      {
        format: BUILDER_FORMAT,
        format_version: 1,
        id: s.id,
        part_power: s.partPower,
        replicas: s.replicas,
        min_part_hours: s.minPartHours,
        overload: s.overload,
        version: s.version,
        devs: s.devs,
        replica2part2dev: s.replica2part2dev?.map(u16ToB64) ?? null,
        last_part_moves: Buffer.from(s.lastPartMoves).toString('base64'),
        last_part_moves_epoch: s.lastPartMovesEpoch,
        last_part_gather_start: s.lastPartGatherStart,
        remove_devs: s.removeDevs,
        devs_changed: s.devsChanged,
        dispersion: s.dispersion,
      },
      null,
      1,
    ) + '\n'
  );
}

export function parseBuilder(text: string): RingBuilder {
  const j = JSON.parse(text) as Record<string, unknown>;
  if (j.format !== BUILDER_FORMAT) throw new Error('not an onestack ring builder file (upstream pickled .builder files cannot be read)');
  if (j.format_version !== 1) throw new Error(`unknown builder format version ${String(j.format_version)}`);
  const state: BuilderState = {
    id: j.id as string,
    partPower: j.part_power as number,
    replicas: j.replicas as number,
    minPartHours: j.min_part_hours as number,
    overload: (j.overload as number) ?? 0,
    version: j.version as number,
    devs: j.devs as (BuilderDevice | null)[],
    replica2part2dev: j.replica2part2dev ? (j.replica2part2dev as string[]).map(b64ToU16) : null,
    lastPartMoves: new Uint8Array(Buffer.from(j.last_part_moves as string, 'base64')),
    lastPartMovesEpoch: j.last_part_moves_epoch as number,
    lastPartGatherStart: (j.last_part_gather_start as number) ?? 0,
    removeDevs: (j.remove_devs as number[]) ?? [],
    devsChanged: Boolean(j.devs_changed),
    dispersion: (j.dispersion as number) ?? 0,
  };
  if (state.lastPartMoves.length !== 2 ** state.partPower) throw new Error('corrupt builder file: last_part_moves has the wrong length');
  return new RingBuilder(state);
}

export function loadBuilder(path: string): RingBuilder {
  return parseBuilder(readFileSync(path, 'utf8'));
}

export function saveBuilder(path: string, b: RingBuilder): void {
  writeFileAtomic(path, serializeBuilder(b), 0o644);
}

/** Upstream's convention: object.builder → object.ring.gz beside it. */
export function ringFileFor(builderPath: string): string {
  return builderPath.replace(/\.builder$/, '') + '.ring.gz';
}
