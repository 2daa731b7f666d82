import { existsSync } from 'node:fs';
import { basename } from 'node:path';
import { Command } from 'commander';
import { loadBuilder, ringFileFor, saveBuilder } from '@onestack/swift/ring/builder-file.ts';
import { RingBuilder, type BuilderDevice, type NewDevice } from '@onestack/swift/ring/builder.ts';
import { readRingFile, writeRingFile } from '@onestack/swift/ring/ring-data.ts';
import { matchDevices, parseSearchValue } from '@onestack/swift/ring/search-value.ts';

/**
 * `onestack swift ring …`: the job of upstream's swift-ring-builder, with its
 * subcommands, device notation and exit codes (0 done, 1 warning, 2 error).
 * The .builder file is onestack's JSON (see builder-file.ts); the ring.gz
 * beside it is upstream's format.
 */
export interface RingCliIo {
  out: (line: string) => void;
  err: (line: string) => void;
  setExitCode: (code: number) => void;
  now?: () => number;
}

const EXIT_WARNING = 1;
const EXIT_ERROR = 2;

const defaultIo: RingCliIo = {
  out: (l) => console.log(l),
  err: (l) => console.error(l),
  setExitCode: (c) => {
    process.exitCode = c;
  },
};

class CliError extends Error {}

function hms(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  return `${Math.floor(s / 3600)}:${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
}

function open(file: string): RingBuilder {
  if (!existsSync(file)) throw new CliError(`Ring Builder file does not exist: ${file}`);
  return loadBuilder(file);
}

function devLabel(d: BuilderDevice): string {
  return `d${d.id}r${d.region}z${d.zone}-${d.ip}:${d.port}R${d.replication_ip}:${d.replication_port}/${d.device}_"${d.meta}"`;
}

/** r1, r1z2, r1z2-10.0.0.1, r1z2-10.0.0.1/d7: a tier as upstream's dispersion report names it. */
function tierLabel([r, z, ip, id]: (string | number)[]): string {
  return `r${r}` + (z !== undefined ? `z${z}` : '') + (ip !== undefined ? `-${ip}` : '') + (id !== undefined ? `/d${id}` : '');
}

function num(v: string, what: string, int = false): number {
  const n = Number(v);
  if (v === '' || !Number.isFinite(n) || (int && !Number.isInteger(n))) throw new CliError(`Invalid ${what}: ${v}`);
  return n;
}

function findOne(b: RingBuilder, search: string): BuilderDevice[] {
  const found = matchDevices(b.devices(), parseSearchValue(search));
  if (!found.length) throw new CliError(`Search value "${search}" matched 0 devices.`);
  return found;
}

interface AddOpts {
  region?: string;
  zone?: string;
  ip?: string;
  port?: string;
  replicationIp?: string;
  replicationPort?: string;
  device?: string;
  weight?: string;
  meta?: string;
}

/** `add` takes upstream's positional pairs (`r1z1-1.2.3.4:6200/sdb1 100 …`) or the long options. */
function devicesToAdd(args: string[], o: AddOpts): NewDevice[] {
  if (args.length) {
    if (args.length % 2) throw new CliError('add: expected pairs of <device> <weight>, e.g. r1z1-127.0.0.1:6200/sdb1 100');
    const out: NewDevice[] = [];
    for (let i = 0; i < args.length; i += 2) {
      const m = parseSearchValue(args[i]);
      if (m.id !== undefined) throw new CliError('add: a device id cannot be given in the device string');
      if (m.zone === undefined || !m.ip || m.port === undefined || !m.device) throw new CliError(`Invalid device: ${args[i]} (need z<zone>-<ip>:<port>/<device>)`);
      out.push({
        region: m.region ?? 1,
        zone: m.zone,
        ip: m.ip,
        port: m.port,
        replication_ip: m.replication_ip,
        replication_port: m.replication_port,
        device: m.device,
        meta: m.meta ?? '',
        weight: num(args[i + 1], 'weight'),
      });
    }
    return out;
  }
  for (const k of ['region', 'zone', 'ip', 'port', 'device', 'weight'] as const) if (o[k] === undefined) throw new CliError(`add: --${k} is required`);
  return [
    {
      region: num(o.region as string, 'region', true),
      zone: num(o.zone as string, 'zone', true),
      ip: o.ip as string,
      port: num(o.port as string, 'port', true),
      ...(o.replicationIp ? { replication_ip: o.replicationIp } : {}),
      ...(o.replicationPort ? { replication_port: num(o.replicationPort, 'replication port', true) } : {}),
      device: o.device as string,
      weight: num(o.weight as string, 'weight'),
      meta: o.meta ?? '',
    },
  ];
}

function listBuilder(file: string, b: RingBuilder, io: RingCliIo): void {
  const devs = b.devices();
  const s = b.state;
  const regions = new Set(devs.map((d) => d.region)).size;
  const zones = new Set(devs.map((d) => `${d.region}/${d.zone}`)).size;
  const balance = b.everRebalanced && devs.some((d) => d.weight > 0) ? b.getBalance() : 0;
  io.out(`${basename(file)}, build version ${s.version}, id ${s.id}`);
  io.out(
    `${b.parts} partitions, ${s.replicas.toFixed(6)} replicas, ${regions} regions, ${zones} zones, ${devs.length} devices, ` +
      `${balance.toFixed(2)} balance, ${s.dispersion.toFixed(2)} dispersion`,
  );
  io.out(`The minimum number of hours before a partition can be reassigned is ${s.minPartHours} (${hms(b.minPartSecondsLeft(io.now?.()))} remaining)`);
  io.out(`The overload factor is ${(100 * s.overload).toFixed(2)}% (${s.overload.toFixed(6)})`);
  const ringFile = ringFileFor(file);
  if (existsSync(ringFile)) {
    const upToDate = readRingFile(ringFile).version === s.version;
    io.out(`Ring file ${basename(ringFile)} ${upToDate ? 'is up-to-date' : 'is obsolete'}`);
  } else io.out(`Ring file ${basename(ringFile)} not found, probably it hasn't been written yet`);
  if (!devs.length) return;
  const perDev = b.everRebalanced && devs.some((d) => d.weight > 0) ? b.balancePerDevice() : new Map<number, number>();
  const rows = [
    ['id', 'region', 'zone', 'ip address:port', 'replication ip:port', 'name', 'weight', 'partitions', 'balance', 'flags', 'meta'],
    ...devs.map((d) => [
      String(d.id),
      String(d.region),
      String(d.zone),
      `${d.ip}:${d.port}`,
      `${d.replication_ip}:${d.replication_port}`,
      d.device,
      d.weight.toFixed(2),
      String(d.parts),
      (perDev.get(d.id) ?? 0).toFixed(2),
      s.removeDevs.includes(d.id) ? 'DEL' : '',
      d.meta,
    ]),
  ];
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  io.out('Devices:');
  for (const r of rows) io.out('  ' + r.map((c, i) => c.padStart(widths[i])).join(' ').trimEnd());
}

/** Saves the builder and writes the ring.gz beside it. */
function commit(file: string, b: RingBuilder, writeRing: boolean): void {
  saveBuilder(file, b);
  if (writeRing) writeRingFile(ringFileFor(file), b.getRing());
}

function rebalance(file: string, b: RingBuilder, o: { force?: boolean; seed?: string }, io: RingCliIo): number {
  const now = io.now?.();
  const left = b.minPartSecondsLeft(now);
  if (!b.state.devsChanged && left > 0 && !o.force) {
    io.out('No partitions could be reassigned.');
    io.out(`The time between rebalances must be at least min_part_hours: ${b.state.minPartHours} hours (${hms(left)} remaining)`);
    return EXIT_WARNING;
  }
  const devsChanged = b.state.devsChanged;
  const wasRebalanced = b.everRebalanced;
  const lastBalance = wasRebalanced ? b.getBalance() : 0;
  const lastDispersion = b.state.dispersion;
  const res = b.rebalance({ ...(o.seed !== undefined ? { seed: num(o.seed, 'seed', true) } : {}), ...(now !== undefined ? { now } : {}) });
  if (!res.changedParts && !res.removedDevices) {
    // The builder's min_part_hours clocks advanced: keep that, but the ring did not change.
    saveBuilder(file, b);
    io.out('No partitions could be reassigned.');
    io.out('There is no need to do so at this time');
    return EXIT_WARNING;
  }
  if (wasRebalanced && !devsChanged && !o.force && Math.abs(lastBalance - res.balance) < 1 && Math.abs(lastDispersion - res.dispersion) < 1) {
    io.out('Cowardly refusing to save rebalance as it did not change at least 1%.');
    return EXIT_WARNING;
  }
  b.validate();
  commit(file, b, true);
  const pct = (100 * res.changedParts) / b.parts;
  io.out(`Reassigned ${res.changedParts} (${pct.toFixed(2)}%) partitions. Balance is now ${res.balance.toFixed(2)}.  Dispersion is now ${res.dispersion.toFixed(2)}`);
  if (res.balance > 5) {
    io.out(`NOTE: Balance of ${res.balance.toFixed(2)} indicates you should push this ring, wait at least ${b.state.minPartHours} hours, and rebalance/repush.`);
    return EXIT_WARNING;
  }
  return 0;
}

export function swiftRingCommand(io: RingCliIo = defaultIo): Command {
  const ring = new Command('ring').description('build rings: partitions of accounts, containers and objects over devices (swift-ring-builder)');
  const run =
    <A extends unknown[]>(fn: (...a: A) => number | void) =>
    (...a: A) => {
      try {
        io.setExitCode(fn(...a) ?? 0);
      } catch (e) {
        io.err(e instanceof Error ? e.message : String(e));
        io.setExitCode(EXIT_ERROR);
      }
    };

  ring
    .command('create <builder_file> <part_power> <replicas> <min_part_hours>')
    .description('a new builder: 2^part_power partitions, replicas copies each, a partition moves at most once per min_part_hours')
    .action(
      run((file: string, pp: string, reps: string, hours: string) => {
        saveBuilder(file, new RingBuilder(num(pp, 'part_power', true), num(reps, 'replicas', true), num(hours, 'min_part_hours', true)));
      }),
    );

  ring
    .command('add <builder_file> [device_and_weight...]')
    .description('add devices: r<region>z<zone>-<ip>:<port>[R<rip>:<rport>]/<device>[_<meta>] <weight> …, or the options')
    .option('--region <n>')
    .option('--zone <n>')
    .option('--ip <ip>')
    .option('--port <n>')
    .option('--replication-ip <ip>')
    .option('--replication-port <n>')
    .option('--device <name>')
    .option('--weight <w>')
    .option('--meta <text>')
    .action(
      run((file: string, args: string[], o: AddOpts) => {
        const b = open(file);
        for (const spec of devicesToAdd(args, o)) {
          const clash = b.devices().find((d) => d.ip === spec.ip && d.port === spec.port && d.device === spec.device);
          if (clash) throw new CliError(`Device ${clash.id} already uses ${spec.ip}:${spec.port}/${spec.device}.`);
          const id = b.addDevice(spec);
          io.out(`Device ${devLabel(b.state.devs[id] as BuilderDevice)} with ${spec.weight.toFixed(1)} weight got id ${id}`);
        }
        saveBuilder(file, b);
      }),
    );

  ring
    .command('set-weight <builder_file> <search_value_and_weight...>')
    .description('set device weights: <search-value> <weight> …')
    .action(
      run((file: string, pairs: string[]) => {
        if (pairs.length % 2) throw new CliError('set-weight: expected pairs of <search-value> <weight>');
        const b = open(file);
        for (let i = 0; i < pairs.length; i += 2) {
          const w = num(pairs[i + 1], 'weight');
          for (const d of findOne(b, pairs[i])) {
            b.setDeviceWeight(d.id, w);
            io.out(`${devLabel(d)} weight set to ${w}`);
          }
        }
        saveBuilder(file, b);
      }),
    );

  ring
    .command('remove <builder_file> <search_value...>')
    .description('mark devices for removal; the next rebalance moves their partitions off')
    .action(
      run((file: string, searches: string[]) => {
        const b = open(file);
        for (const s of searches)
          for (const d of findOne(b, s)) {
            b.removeDevice(d.id);
            io.out(`${devLabel(d)} marked for removal and will be removed next rebalance.`);
          }
        saveBuilder(file, b);
      }),
    );

  ring
    .command('rebalance <builder_file>')
    .description('reassign partitions and write <name>.ring.gz beside the builder')
    .option('-f, --force', 'save even if the balance changed less than 1%, and ignore min_part_hours’ wait for an unchanged builder')
    .option('-s, --seed <n>', 'seed for the placement’s random choices')
    .action(run((file: string, o: { force?: boolean; seed?: string }) => rebalance(file, open(file), o, io)));

  ring
    .command('list <builder_file>')
    .description('the builder: partitions, replicas, devices with their partitions and balance')
    .action(run((file: string) => listBuilder(file, open(file), io)));

  ring
    .command('write-ring <builder_file>')
    .description('write the ring.gz from the builder without rebalancing')
    .action(
      run((file: string) => {
        const b = open(file);
        if (!b.everRebalanced) io.err('Warning: writing a ring with no partitions assigned');
        writeRingFile(ringFileFor(file), b.getRing());
      }),
    );

  ring
    .command('validate <builder_file>')
    .description('check every partition is assigned once per replica to live, distinct devices')
    .action(run((file: string) => void open(file).validate()));

  ring
    .command('dispersion <builder_file>')
    .description('how many partition-replicas share a failure domain beyond what the topology requires')
    .action(
      run((file: string) => {
        const b = open(file);
        const r = b.dispersionReport();
        io.out(`Dispersion is ${r.dispersion.toFixed(6)}, ${r.partsAtRisk} partition-replicas at risk`);
        io.out(`${'Tier'.padEnd(40)} ${Array.from({ length: b.state.replicas + 1 }, (_, i) => `${i} repl`.padStart(8)).join(' ')}`);
        for (const [tier, counts] of [...r.graph].sort(([a], [c]) => a.length - c.length || (a < c ? -1 : 1)))
          io.out(`${tierLabel(JSON.parse(tier) as (string | number)[]).padEnd(40)} ${counts.map((c) => String(c).padStart(8)).join(' ')}`);
        return r.partsAtRisk ? EXIT_WARNING : 0;
      }),
    );

  ring
    .command('pretend-min-part-hours-passed <builder_file>')
    .description('let the next rebalance move any partition')
    .action(
      run((file: string) => {
        const b = open(file);
        b.pretendMinPartHoursPassed();
        saveBuilder(file, b);
      }),
    );

  ring
    .command('set-min-part-hours <builder_file> <hours>')
    .action(
      run((file: string, hours: string) => {
        const b = open(file);
        b.setMinPartHours(num(hours, 'hours', true));
        saveBuilder(file, b);
        io.out(`The minimum number of hours before a partition can be reassigned is now set to ${hours}`);
      }),
    );

  ring
    .command('set-overload <builder_file> <overload>')
    .description('how far (0.1 or 10%) a device may exceed its weighted share to keep replicas in distinct failure domains')
    .action(
      run((file: string, v: string) => {
        const b = open(file);
        const o = v.endsWith('%') ? num(v.slice(0, -1), 'overload') / 100 : num(v, 'overload');
        b.setOverload(o);
        saveBuilder(file, b);
        io.out(`The overload factor is now ${(100 * o).toFixed(2)}% (${o.toFixed(6)})`);
      }),
    );

  return ring;
}

/** Hooks `swift ring …` into the onestack CLI. */
export function registerSwiftRingCli(program: Command, io: RingCliIo = defaultIo): void {
  const swift = program.commands.find((c) => c.name() === 'swift') ?? program.command('swift').description('object storage administration');
  swift.addCommand(swiftRingCommand(io));
}
