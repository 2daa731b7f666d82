/**
 * IPv6 router advertisements from a router namespace, by radvd as upstream's L3 agent runs
 * it (neutron/agent/linux/ra.py): for each interface on v6 subnets with an `ipv6_ra_mode`,
 * the router advertises itself as the default router and the subnets' prefixes, with the
 * flags the mode asks for:
 *   slaac             prefix autonomous (guests build their EUI-64 address)
 *   dhcpv6-stateless  prefix autonomous + "other configuration" (DNS from DHCPv6)
 *   dhcpv6-stateful   "managed" (addresses from DHCPv6), prefix on-link but not autonomous
 * The DHCP agent's dnsmasq answers the DHCPv6 requests these flags send guests to.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCommand, type ExecLogger } from '@onestack/core/exec/privileged-exec.ts';
import { parseCidr } from '../../domain/addresses.ts';
import { readCmdline, stopProcess } from '../dhcp/dhcp-agent.ts';
import type { IpLib } from '../linux/ip-lib.ts';
import { internalDevice } from './device-names.ts';
import type { RouterState } from './router-state.ts';

// upstream's [DEFAULT] max_rtr_adv_interval; min is a third of it (ra.py).
const MAX_RTR_ADV_INTERVAL = 100;
const IPV6_MIN_MTU = 1280;

/** radvd.conf for the router; null when no interface has a v6 subnet with an RA mode. */
export function radvdConfig(router: RouterState): string | null {
  const blocks: string[] = [];
  for (const itf of router.interfaces) {
    const v6 = itf.fixedIps.filter((f) => f.ipAddress.includes(':') && f.ipv6RaMode);
    if (v6.length === 0) continue;
    const modes = new Set(v6.map((f) => f.ipv6RaMode));
    const lines = [
      `interface ${internalDevice(itf.portId)}`,
      '{',
      '   AdvSendAdvert on;',
      `   MinRtrAdvInterval ${Math.floor(MAX_RTR_ADV_INTERVAL / 3)};`,
      `   MaxRtrAdvInterval ${MAX_RTR_ADV_INTERVAL};`,
    ];
    if (itf.mtu && itf.mtu >= IPV6_MIN_MTU) lines.push(`   AdvLinkMTU ${itf.mtu};`);
    if (modes.has('dhcpv6-stateless')) lines.push('   AdvOtherConfigFlag on;');
    if (modes.has('dhcpv6-stateful')) lines.push('   AdvManagedFlag on;');
    for (const f of v6) {
      lines.push(`   prefix ${parseCidr(`${f.ipAddress}/${f.prefixlen}`, false)!.text}`, '   {', '        AdvOnLink on;', `        AdvAutonomous ${f.ipv6RaMode === 'dhcpv6-stateful' ? 'off' : 'on'};`, '   };');
    }
    lines.push('};');
    blocks.push(lines.join('\n'));
  }
  return blocks.length ? `${blocks.join('\n')}\n` : null;
}

export class RouterAdvertisements {
  constructor(private readonly opts: { ip: IpLib; logger: ExecLogger; stateDir: string }) {}

  private file(routerId: string, ext: 'pid' | 'conf' | 'log'): string {
    return join(this.opts.stateDir, 'router-ra', `${routerId}.${ext}`);
  }

  /** The running radvd of this router, when its pid file names a radvd of ours. */
  pid(routerId: string): number | undefined {
    const file = this.file(routerId, 'pid');
    if (!existsSync(file)) return undefined;
    const pid = Number(readFileSync(file, 'utf8').trim());
    if (!Number.isInteger(pid) || pid <= 1) return undefined;
    return readCmdline(pid)?.includes(file) ? pid : undefined;
  }

  /** Starts, restarts (configuration changed) or stops the router's radvd; true when it did. */
  async sync(ns: string, router: RouterState): Promise<boolean> {
    const conf = radvdConfig(router);
    const confFile = this.file(router.id, 'conf');
    const pid = this.pid(router.id);
    const same = conf !== null && existsSync(confFile) && readFileSync(confFile, 'utf8') === conf;
    if (pid !== undefined && same) return false;
    if (pid !== undefined) await stopProcess(pid);
    if (conf === null) {
      rmSync(confFile, { force: true });
      return pid !== undefined;
    }
    mkdirSync(join(this.opts.stateDir, 'router-ra'), { recursive: true, mode: 0o755 });
    writeFileSync(`${confFile}.tmp`, conf, { mode: 0o644 });
    renameSync(`${confFile}.tmp`, confFile);
    const pidFile = this.file(router.id, 'pid');
    rmSync(pidFile, { force: true });
    // radvd checks the configuration, forks and writes its pid file before the parent exits.
    const args = ['-C', confFile, '-p', pidFile, '-m', 'logfile', '-l', this.file(router.id, 'log')];
    await runCommand('ip', this.opts.ip.netnsExecArgs(ns, 'radvd', args), { logger: this.opts.logger, timeoutMs: 15_000 });
    return true;
  }

  async stop(routerId: string): Promise<void> {
    const pid = this.pid(routerId);
    if (pid !== undefined) await stopProcess(pid);
    for (const ext of ['pid', 'conf', 'log'] as const) rmSync(this.file(routerId, ext), { force: true });
  }
}
