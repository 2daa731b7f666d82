import type { Constraints } from './constraints.ts';

/** The Swift release whose API this proxy speaks, as /info reports it. */
export const SWIFT_API_VERSION = '2.38.1';

/**
 * `GET /info` capabilities (upstream's register_swift_info): the proxy's
 * `swift` section, then one section per enabled middleware.
 */
export class InfoRegistry {
  private sections = new Map<string, Record<string, unknown>>();

  register(section: string, values: Record<string, unknown>): void {
    this.sections.set(section, { ...(this.sections.get(section) ?? {}), ...values });
  }

  toJSON(): Record<string, unknown> {
    return Object.fromEntries(this.sections);
  }
}

export function swiftSection(c: Constraints, o: { accountAutocreate: boolean; policyName: string; strictCorsMode: boolean }): Record<string, unknown> {
  return {
    version: SWIFT_API_VERSION,
    strict_cors_mode: o.strictCorsMode,
    policies: [{ name: o.policyName, aliases: o.policyName, default: true }],
    allow_account_management: false,
    account_autocreate: o.accountAutocreate,
    allow_open_expired: false,
    ...c,
  };
}
