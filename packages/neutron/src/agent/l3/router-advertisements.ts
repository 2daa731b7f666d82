/**
 * IPv6 router advertisements from a router namespace (upstream runs radvd there): for each
 * interface on a v6 subnet with `ipv6_ra_mode` slaac or dhcpv6-stateless, the router
 * advertises the prefix (autonomous: guests build their EUI-64 address) and itself as the
 * default router. dnsmasq in RA-only mode does it (`--port=0`, no DHCP range): these
 * machines have dnsmasq and no radvd. The "other configuration" flag of stateless subnets
 * comes from the DHCP agent's dnsmasq, which answers the Information-Requests.
 *
 * Not advertised: dhcpv6-stateful subnets (dnsmasq would need a DHCPv6 range here to set the
 * managed flag; the DHCP agent's RA sets it, with router lifetime 0, so guests there get no
 * default route from an RA).
 */
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { runCommand, type ExecLogger } from '@onestack/core/exec/privileged-exec.ts';
import { readCmdline, sameArgs, stopProcess } from '../dhcp/dhcp-agent.ts';
import type { IpLib } from '../linux/ip-lib.ts';
import { internalDevice } from './device-names.ts';
import type { RouterState } from './router-state.ts';

const ADVERTISED_MODES = new Set(['slaac', 'dhcpv6-stateless']);

/** dnsmasq's arguments for the router's advertisements; null when it advertises nothing. */
export function advertisementArgs(router: RouterState, pidFile: string): string[] | null {
  const ranges: string[] = [];
  for (const itf of router.interfaces) {
    const v6 = itf.fixedIps.filter((f) => f.ipAddress.includes(':') && ADVERTISED_MODES.has(f.ipv6RaMode ?? ''));
    if (v6.length === 0) continue;
    const dev = internalDevice(itf.portId);
    ranges.push(`--interface=${dev}`, `--dhcp-range=::,constructor:${dev},ra-only,${v6[0].prefixlen}`);
    // Unsolicited every 30 s (radvd-like); solicitations are answered at once.
    ranges.push(`--ra-param=${dev},${itf.mtu ? `mtu:${itf.mtu},` : ''}30`);
  }
  if (ranges.length === 0) return null;
  return ['--no-hosts', '--no-resolv', '--port=0', '--conf-file=/dev/null', `--pid-file=${pidFile}`, '--dhcp-leasefile=/dev/null', '--bind-interfaces', '--enable-ra', ...ranges];
}

export class RouterAdvertisements {
  constructor(private readonly opts: { ip: IpLib; logger: ExecLogger; stateDir: string }) {}

  private pidFile(routerId: string): string {
    return join(this.opts.stateDir, 'router-ra', `${routerId}.pid`);
  }

  /** The running advertiser of this router, when its pid file names a dnsmasq of ours. */
  pid(routerId: string): number | undefined {
    const file = this.pidFile(routerId);
    if (!existsSync(file)) return undefined;
    const pid = Number(readFileSync(file, 'utf8').trim());
    if (!Number.isInteger(pid) || pid <= 1) return undefined;
    return readCmdline(pid)?.includes(`--pid-file=${file}`) ? pid : undefined;
  }

  /** Starts, restarts (arguments changed) or stops the router's advertiser; true when it did. */
  async sync(ns: string, router: RouterState): Promise<boolean> {
    const file = this.pidFile(router.id);
    const args = advertisementArgs(router, file);
    const pid = this.pid(router.id);
    if (args && pid !== undefined && sameArgs(readCmdline(pid), args)) return false;
    if (pid !== undefined) await stopProcess(pid);
    if (!args) return pid !== undefined;
    mkdirSync(join(this.opts.stateDir, 'router-ra'), { recursive: true, mode: 0o755 });
    // dnsmasq daemonizes once its sockets are bound and its pid file written.
    await runCommand('ip', this.opts.ip.netnsExecArgs(ns, 'dnsmasq', args), { logger: this.opts.logger, timeoutMs: 15_000 });
    return true;
  }

  async stop(routerId: string): Promise<void> {
    const pid = this.pid(routerId);
    if (pid !== undefined) await stopProcess(pid);
    rmSync(this.pidFile(routerId), { force: true });
  }
}
