/** Free-form attributes live in JSON text columns; these keep the parsing in one place. */
export function parseJson<T = Record<string, unknown>>(text: string | null | undefined, fallback: T = {} as T): T {
  if (!text) return fallback;
  try {
    return JSON.parse(text) as T;
  } catch {
    return fallback;
  }
}

export const bool = (n: number | null | undefined): boolean => n === 1 || (n as unknown) === true || (n as unknown) === '1';
export const int = (b: boolean | undefined): number => (b ? 1 : 0);

/** Timestamps as upstream formats them: ISO 8601 with microseconds and a Z. */
export function isoTime(ms: number | null | undefined): string | null {
  if (ms === null || ms === undefined) return null;
  return new Date(Number(ms)).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

/** Resource options (of projects, domains, users) are set by name; a null value removes the option, as upstream. */
export function mergeOptions(current: Record<string, unknown>, patch: Record<string, unknown> | undefined): Record<string, unknown> {
  const merged = { ...current };
  for (const [k, v] of Object.entries(patch ?? {})) {
    if (v === null) delete merged[k];
    else merged[k] = v;
  }
  return merged;
}
