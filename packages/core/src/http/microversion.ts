import { ApiError } from '../errors.ts';

/**
 * Microversion negotiation as upstream's services do it (nova/api/openstack/api_version_request.py):
 * `OpenStack-API-Version: <service-type> X.Y` or a service's legacy header, `latest`
 * meaning the maximum, no header meaning the minimum, anything out of range a 406.
 */
export interface Microversion {
  major: number;
  minor: number;
}

export interface MicroversionConfig {
  serviceType: string;
  min: string;
  max: string;
  /** e.g. X-OpenStack-Nova-API-Version; honoured when the standard header is absent. */
  legacyHeader?: string;
  /**
   * The root versions document answers whatever version a client asks for (Cinder's: cinderclient
   * probes `/` with its own maximum). Placement's root is microversioned and leaves this off.
   */
  unversionedRoot?: boolean;
}

export function parseVersion(s: string): Microversion | undefined {
  const m = /^([1-9]\d*)\.(0|[1-9]\d*)$/.exec(s.trim());
  return m ? { major: Number(m[1]), minor: Number(m[2]) } : undefined;
}

export function formatVersion(v: Microversion): string {
  return `${v.major}.${v.minor}`;
}

export function compareVersions(a: Microversion, b: Microversion): number {
  return a.major - b.major || a.minor - b.minor;
}

/** The thresholds route code passes are a few constants, tested many times per response (per server of a list). */
const thresholds = new Map<string, Microversion>();

/** True when `v` is at least `atLeast` ("2.53"): the common test in route handlers. */
export function isAtLeast(v: Microversion | undefined, atLeast: string): boolean {
  const w = thresholds.get(atLeast) ?? thresholds.set(atLeast, parseVersion(atLeast)!).get(atLeast)!;
  return v !== undefined && compareVersions(v, w) >= 0;
}

export class MicroversionNegotiator {
  readonly min: Microversion;
  readonly max: Microversion;

  constructor(readonly config: MicroversionConfig) {
    this.min = parseVersion(config.min)!;
    this.max = parseVersion(config.max)!;
  }

  /** The headers value as received (the standard header may carry several services). */
  negotiate(headers: Record<string, string | string[] | undefined>): Microversion {
    const requested = this.requested(headers);
    if (requested === undefined) return this.min;
    if (requested.toLowerCase() === 'latest') return this.max;
    const v = parseVersion(requested);
    if (!v) {
      throw new ApiError('bad_request', `API Version String ${requested} is of invalid format. Must be of format MajorNum.MinorNum.`);
    }
    if (compareVersions(v, this.min) < 0 || compareVersions(v, this.max) > 0) {
      throw new ApiError(
        'not_acceptable',
        `Version ${requested} is not supported by the API. Minimum is ${this.config.min} and maximum is ${this.config.max}.`,
      );
    }
    return v;
  }

  responseHeaders(v: Microversion): Record<string, string> {
    const value = formatVersion(v);
    const headers: Record<string, string> = {
      'OpenStack-API-Version': `${this.config.serviceType} ${value}`,
      Vary: this.config.legacyHeader ? `OpenStack-API-Version, ${this.config.legacyHeader}` : 'OpenStack-API-Version',
    };
    if (this.config.legacyHeader) headers[this.config.legacyHeader] = value;
    return headers;
  }

  private requested(headers: Record<string, string | string[] | undefined>): string | undefined {
    const std = headerValue(headers['openstack-api-version']);
    if (std) {
      for (const part of std.split(',')) {
        const [type, version] = part.trim().split(/\s+/, 2);
        if (type?.toLowerCase() === this.config.serviceType && version) return version;
      }
    }
    if (this.config.legacyHeader) return headerValue(headers[this.config.legacyHeader.toLowerCase()]);
    return undefined;
  }
}

function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.join(',') : v;
}
