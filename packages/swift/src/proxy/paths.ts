/** `/v1/<account>[/<container>[/<object>]]` split as upstream's split_path(1, 4, True): the object keeps its slashes. */
export function splitSwiftPath(path: string): { version: string; account?: string; container?: string; obj?: string } | undefined {
  if (!path.startsWith('/')) return undefined;
  const segs = path.slice(1).split('/');
  const version = segs[0];
  const account = segs[1];
  const container = segs[2];
  const obj = segs.length > 3 ? segs.slice(3).join('/') : undefined;
  if (!version) return undefined;
  if (!account && (container || obj)) return undefined;
  if (!container && obj) return undefined;
  return { version, account: account || undefined, container: container || undefined, obj: obj || undefined };
}
