/**
 * The agents of one host, composed: L2 wiring first (bridges must exist before DHCP's veth and
 * the firewall's taps), then DHCP, then the firewall. Every reconcile is a full sync against the
 * desired HostState; the first one after start-up is what removes a previous run's leftovers
 * (stale bridges and vxlan devices, qdhcp namespaces and their dnsmasq by pid file, tables), so
 * a restart with an unchanged state leaves the data plane working and untouched.
 *
 * Reconciles are serialised: a resync arriving mid-way waits for the running one.
 */
import type { ExecLogger } from '@onestack/core/exec/privileged-exec.ts';
import { DhcpAgent } from './dhcp/dhcp-agent.ts';
import { Firewall } from './firewall/firewall.ts';
import { LinuxBridgeAgent } from './l2/linuxbridge-agent.ts';
import { IpLib } from './linux/ip-lib.ts';
import type { HostReport, HostState } from './model.ts';

export interface HostAgentOptions {
  logger: ExecLogger;
  /** Where bridges, vxlan devices and taps live (all-in-one: `onestack-host`). */
  hostNamespace: string;
  /** Prefix of the namespaces this host's agents create (`<prefix>qdhcp-<net>`). */
  namespacePrefix: string;
  /** dnsmasq files, firewall marks and listings. */
  stateDir: string;
  physicalInterfaceMappings?: Record<string, string>;
  vxlanPort?: number;
  dhcpLeaseSeconds?: number;
  dnsDomain?: string;
  /** Creates the host namespace when missing (the all-in-one); tests bring their own. */
  createHostNamespace?: boolean;
  ip?: IpLib;
}

export class HostAgent {
  readonly ip: IpLib;
  readonly l2: LinuxBridgeAgent;
  readonly dhcp: DhcpAgent;
  readonly firewall: Firewall;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly opts: HostAgentOptions) {
    this.ip = opts.ip ?? new IpLib({ logger: opts.logger });
    const common = { ip: this.ip, logger: opts.logger, hostNamespace: opts.hostNamespace };
    this.l2 = new LinuxBridgeAgent({ ...common, physicalInterfaceMappings: opts.physicalInterfaceMappings, vxlanPort: opts.vxlanPort });
    this.dhcp = new DhcpAgent({
      ...common,
      namespacePrefix: opts.namespacePrefix,
      stateDir: opts.stateDir,
      leaseSeconds: opts.dhcpLeaseSeconds,
      dnsDomain: opts.dnsDomain,
    });
    this.firewall = new Firewall({ ...common, stateDir: opts.stateDir });
  }

  /** Makes the host match `state`; never throws for one failed piece (see the report's errors). */
  reconcile(state: HostState): Promise<HostReport> {
    const run = this.queue.then(() => this.reconcileNow(state));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async reconcileNow(state: HostState): Promise<HostReport> {
    const report: HostReport = { host: state.host, wiredPorts: [], unwiredPorts: [], dhcpNetworks: [], errors: [] };
    const step = async <T>(what: string, fn: () => Promise<T>): Promise<T | undefined> => {
      try {
        return await fn();
      } catch (err) {
        report.errors.push({ what, message: (err as Error).message });
        this.opts.logger.warn({ what, err: (err as Error).message }, 'host reconcile step failed');
        return undefined;
      }
    };
    if (this.opts.createHostNamespace) await step('host namespace', () => this.ip.netnsAdd(this.opts.hostNamespace, { mayExist: true }));
    const l2 = await step('l2', () => this.l2.reconcile(state));
    if (l2) {
      report.wiredPorts = l2.wiredPorts;
      report.unwiredPorts = l2.unwiredPorts;
      report.errors.push(...l2.errors);
    }
    const dhcp = await step('dhcp', () => this.dhcp.reconcile(state));
    if (dhcp) {
      report.dhcpNetworks = dhcp.dhcpNetworks;
      report.errors.push(...dhcp.errors);
    }
    const fw = await step('firewall', () => this.firewall.reconcile(state));
    if (fw) report.errors.push(...fw.errors);
    return report;
  }
}
