/**
 * upstream's staticweb: a container whose X-Container-Meta-Web-Index,
 * -Web-Listings, -Web-Listings-CSS, -Web-Listings-Label, -Web-Error and
 * -Web-Directory-Type are set serves anonymous GETs (and token ones that send
 * X-Web-Mode: true) as a web site: index files, HTML listings, custom error
 * pages named `<status><web-error>`, redirects to the slash-terminated path.
 */
import type { ProxyContext } from '../controllers/base.ts';
import { containerInfo } from '../controllers/container.ts';
import type { InfoRegistry } from '../info.ts';
import { splitSwiftPath } from '../paths.ts';
import { discard, isSuccess, readBody, respond } from '../responses.ts';
import type { Handler, Middleware, SwiftRequest, SwiftResponse } from '../types.ts';
import { quote } from '../wsgi-strings.ts';
import { subRequest } from './segments.ts';
import type { TempUrlGrant } from './tempurl.ts';

interface WebConf {
  index: string;
  error: string;
  listings: string;
  label: string;
  css: string;
  dirType: string;
  readAcl?: string;
}

const truthy = (v: string | undefined) => ['true', '1', 'yes', 'on', 't', 'y'].includes((v ?? '').toLowerCase());
const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#x27;');
const isRedirect = (s: number) => s >= 300 && s < 400;

/** upstream's human_readable: 1023, 1Ki, 5Mi … */
export function humanReadable(n: number): string {
  let v = n;
  let i = -1;
  const suffixes = 'KMGTPEZY';
  while (v >= 1024 && i + 1 < suffixes.length) {
    i++;
    v = Math.round(v / 1024);
  }
  return i === -1 ? String(Math.floor(v)) : `${Math.round(v)}${suffixes[i]}i`;
}

async function webConf(ctx: ProxyContext, req: SwiftRequest, account: string, container: string): Promise<WebConf> {
  const info = await containerInfo(ctx, req, account, container);
  const m = isSuccess(info.status) ? info.meta : {};
  const get = (k: string) => (m[k] ?? '').trim();
  return { index: get('web-index'), error: get('web-error'), listings: get('web-listings'), label: get('web-listings-label'), css: get('web-listings-css'), dirType: get('web-directory-type'), readAcl: info.readAcl };
}

class Site {
  constructor(
    private next: Handler,
    private req: SwiftRequest,
    private base: string,
    private conf: WebConf,
    private urlBase?: string,
  ) {}

  get(path: string, query?: URLSearchParams): Promise<SwiftResponse> {
    return this.next(subRequest(this.req, 'SW', this.req.method === 'HEAD' && !query ? 'HEAD' : 'GET', path, { query, headers: query ? {} : { ...this.req.headers } }));
  }

  /** The error answer, with the site's `<status><web-error>` page as its body when there is one. */
  async error(res: SwiftResponse, useErrorPage = true): Promise<SwiftResponse> {
    if (!useErrorPage || !this.conf.error) return res;
    const page = await this.next(subRequest(this.req, 'SW', 'GET', `${this.base}/${res.status}${this.conf.error}`));
    if (!isSuccess(page.status)) {
      discard(page.body);
      return res;
    }
    discard(res.body);
    return { status: res.status, headers: page.headers, body: this.req.method === 'HEAD' ? undefined : page.body };
  }

  redirectWithSlash(): SwiftResponse {
    return respond(301, undefined, { location: `${this.urlBase ?? this.req.env.hostUrl ?? ''}${quote(`${this.req.path}/`)}` });
  }

  private cssLink(prefix: string): string {
    const href = /^(\/|https?:\/\/)/.test(this.conf.css) ? quote(this.conf.css, ':/') : '../'.repeat(prefix.split('/').length - 1) + quote(this.conf.css);
    return `  <link rel="stylesheet" type="text/css" href="${href}" />\n`;
  }

  /** The HTML listing of the container under `prefix` (or the "listings disabled" page). */
  async listing(prefix = ''): Promise<SwiftResponse> {
    const label = this.conf.label ? `${this.conf.label}/${this.req.path.split('/').slice(4).join('/')}` : this.req.path;
    if (!truthy(this.conf.listings)) {
      let body = `<!DOCTYPE html>\n<html>\n<head>\n<title>Listing of ${esc(label)}</title>\n`;
      body += this.conf.css ? this.cssLink(prefix) : '  <style type="text/css">\n   h1 {font-size: 1em; font-weight: bold;}\n   p {font-size: 2}\n  </style>\n';
      body +=
        '</head>\n<body>  <h1>Web Listing Disabled</h1>   <p>The owner of this web site has disabled web listing.   <p>If you are the owner of this web site, you can enable   web listing by setting X-Container-Meta-Web-Listings.</p>';
      if (this.conf.index) body += `<h1>Index File Not Found</h1> <p>The owner of this web site has set  <b>X-Container-Meta-Web-Index: ${this.conf.index}</b>.  However, this file is not found.</p>`;
      body += ' </body>\n</html>\n';
      return this.error(respond(404, body, { 'content-type': 'text/html; charset=UTF-8' }));
    }
    const query = new URLSearchParams({ format: 'json', delimiter: '/' });
    if (prefix) query.set('prefix', prefix);
    const res = await this.get(this.base, query);
    if (!isSuccess(res.status)) return this.error(res);
    const raw = await readBody(res.body);
    const items = (raw.length ? JSON.parse(raw.toString('utf8')) : []) as { name?: string; subdir?: string; bytes?: number; content_type?: string; last_modified?: string }[];
    if (prefix && !items.length) return this.error(respond(404));
    let body = `<!DOCTYPE html>\n<html>\n <head>\n  <title>Listing of ${esc(label)}</title>\n`;
    body += this.conf.css
      ? this.cssLink(prefix)
      : '  <style type="text/css">\n   h1 {font-size: 1em; font-weight: bold;}\n   th {text-align: left; padding: 0px 1em 0px 1em;}\n   td {padding: 0px 1em 0px 1em;}\n   a {text-decoration: none;}\n  </style>\n';
    body += ` </head>\n <body>\n  <h1 id="title">Listing of ${esc(label)}</h1>\n  <table id="listing">\n   <tr id="heading">\n    <th class="colname">Name</th>\n    <th class="colsize">Size</th>\n    <th class="coldate">Date</th>\n   </tr>\n`;
    const grant = this.req.env.extra.tempurl as TempUrlGrant | undefined;
    // Under a prefix tempurl every link carries the signature, and the listing goes no higher than the prefix.
    const signed = grant?.prefix !== undefined ? `?${[`temp_url_prefix=${quote(grant.prefix)}`, `temp_url_expires=${grant.expires}`, `temp_url_sig=${grant.sig}`, ...(grant.inline ? ['inline'] : [])].join('&amp;')}` : '';
    if (prefix.length > (grant?.prefix ?? '').length) body += `   <tr id="parent" class="item">\n    <td class="colname"><a href="../${signed}">../</a></td>\n    <td class="colsize">&nbsp;</td>\n    <td class="coldate">&nbsp;</td>\n   </tr>\n`;
    const href = (n: string) => quote(n).replace(/\./g, '%2E') + signed;
    for (const it of items) {
      if (it.subdir === undefined) continue;
      const sub = it.subdir.slice(prefix.length);
      body += `   <tr class="item subdir">\n    <td class="colname"><a href="./${href(sub)}">${esc(sub)}</a></td>\n    <td class="colsize">&nbsp;</td>\n    <td class="coldate">&nbsp;</td>\n   </tr>\n`;
    }
    for (const it of items) {
      if (it.name === undefined) continue;
      const name = it.name.slice(prefix.length);
      const types = (it.content_type ?? '').split('/').map((t) => `type-${esc(t.toLowerCase())}`).join(' ');
      const date = esc(it.last_modified ?? '').split('.')[0].replace('T', ' ');
      body += `   <tr class="item ${types}">\n    <td class="colname"><a href="./${href(name)}">${esc(name)}</a></td>\n    <td class="colsize">${humanReadable(it.bytes ?? 0)}</td>\n    <td class="coldate">${date}</td>\n   </tr>\n`;
    }
    body += '  </table>\n </body>\n</html>\n';
    return { status: 200, headers: { 'content-type': 'text/html; charset=UTF-8' }, body: this.req.method === 'HEAD' ? undefined : body };
  }

  async container(): Promise<SwiftResponse> {
    if (!this.req.path.endsWith('/')) return this.redirectWithSlash();
    if (!this.conf.index) return this.listing();
    const res = await this.get(`${this.req.path}${this.conf.index}`);
    if (res.status === 404) {
      discard(res.body);
      return this.listing();
    }
    if (!isSuccess(res.status) && !isRedirect(res.status)) return this.error(res);
    return res;
  }

  async object(obj: string): Promise<SwiftResponse> {
    let res = await this.next(this.req);
    let status = res.status;
    if (isSuccess(status) || isRedirect(status)) {
      const dirType = this.conf.dirType || 'application/directory';
      if (res.headers['content-type'] !== dirType || Number(res.headers['content-length'] ?? 0) > 1) return res;
      status = 404;
    }
    if (status !== 404) return this.error(res, false);
    if (!this.conf.listings && !this.conf.index) return res;
    discard(res.body);
    if (this.conf.index) {
      res = await this.get(`${this.req.path.replace(/\/?$/, '/')}${this.conf.index}`);
      if (isSuccess(res.status) || isRedirect(res.status)) return this.req.path.endsWith('/') ? res : (discard(res.body), this.redirectWithSlash());
      if (res.status !== 404) return res;
      discard(res.body);
    }
    if (this.req.path.endsWith('/')) return this.listing(obj);
    const probe = await this.get(this.base, new URLSearchParams({ format: 'json', limit: '1', delimiter: '/', prefix: `${obj}/` }));
    const body = isSuccess(probe.status) ? await readBody(probe.body) : (discard(probe.body), Buffer.alloc(0));
    if (!body.length || !(JSON.parse(body.toString('utf8')) as unknown[]).length) return this.error(respond(404));
    return this.redirectWithSlash();
  }
}

/** url_base's scheme and host (upstream keeps only those of it); undefined when not set or not a URL. */
function urlBaseOrigin(urlBase: string | undefined): string | undefined {
  if (!urlBase) return undefined;
  try {
    const u = new URL(urlBase);
    return `${u.protocol}//${u.host}`;
  } catch {
    return undefined;
  }
}

export function staticWeb(ctx: ProxyContext, info: InfoRegistry, urlBase?: string): Middleware {
  info.register('staticweb', {});
  const origin = urlBaseOrigin(urlBase);
  return (next) => async (req) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return next(req);
    if (!req.env.authorize) return next(req);
    if (req.env.remoteUser && !req.env.extra.tempurl && !truthy(req.headers['x-web-mode'])) return next(req);
    const p = splitSwiftPath(req.path);
    if (!p?.account || !p.container) return next(req);
    const conf = await webConf(ctx, req, p.account, p.container);
    const site = new Site(next, req, `/${p.version}/${p.account}/${p.container}`, conf, origin);
    if (p.obj) return site.object(p.obj);
    req.env.acl = conf.readAcl;
    const denied = req.env.authorize(req);
    if (denied) return site.error(denied);
    if (!conf.listings && !conf.index) return truthy(req.headers['x-web-mode']) ? respond(404) : next(req);
    return site.container();
  };
}
