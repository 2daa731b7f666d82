import type { ApiError } from '@onestack/core/errors.ts';

export interface RowPage {
  limit: number;
  marker?: string;
  offset?: number;
}

/**
 * One page of rows already in their sort order (id the last key, as upstream's
 * paginate_query): what follows the marker, less offset rows, at most limit.
 * For tables with few rows per project, where this keeps marker semantics exact.
 */
export function pageAfterMarker<T extends { id: string }>(rows: T[], page: RowPage, markerNotFound: (id: string) => ApiError): T[] {
  let rest = rows;
  if (page.marker !== undefined) {
    const at = rows.findIndex((r) => r.id === page.marker);
    if (at < 0) throw markerNotFound(page.marker);
    rest = rows.slice(at + 1);
  }
  const from = page.offset ?? 0;
  return rest.slice(from, from + page.limit);
}
