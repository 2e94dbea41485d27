/**
 * One default-deny router per listener over the fixed route table: a request that matches no
 * route of its listener is 404; one that does is checked for its caller (certificate or role),
 * its Origin on API writes, and its body against the route's schema, before the handler sees it.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HttpError, roleAllows, SAFE_PARAM, type AgentIdentity, type ApiUser, type Route, type RouteReply } from './routes.ts';

/** Largest JSON body a route accepts. */
export const MAX_BODY_BYTES = 1024 * 1024;

/** Who is calling, as the listener established it. */
export interface Caller {
  identity?: AgentIdentity;
  user?: ApiUser;
  /** How the API user authenticated: a session cookie is ambient, so its writes need a matching Origin. */
  via?: 'bearer' | 'cookie';
}

interface CompiledRoute {
  route: Route;
  segments: string[];
}

export interface Router {
  handle(req: IncomingMessage, res: ServerResponse): Promise<void>;
  /** The route `method path` matches, with its params; undefined when none does. */
  match(method: string, path: string): { route: Route; params: Record<string, string> } | undefined;
}

export function createRouter(
  listener: Route['listener'],
  routes: readonly Route[],
  caller: (req: IncomingMessage) => Promise<Caller>,
  log: (line: string) => void,
  shutdown: AbortSignal,
): Router {
  const table: CompiledRoute[] = routes.filter((r) => r.listener === listener).map((route) => ({ route, segments: route.path.split('/') }));

  const match = (method: string, path: string) => {
    const parts = path.split('/');
    for (const { route, segments } of table) {
      if (route.method !== method || segments.length !== parts.length) continue;
      const params: Record<string, string> = {};
      let ok = true;
      for (let i = 0; i < segments.length && ok; i++) {
        const want = segments[i]!;
        const got = parts[i]!;
        if (want.startsWith(':')) {
          let value: string;
          try {
            value = decodeURIComponent(got);
          } catch {
            value = '';
          }
          if (SAFE_PARAM.test(value)) params[want.slice(1)] = value;
          else ok = false;
        } else if (want !== got) ok = false;
      }
      if (ok) return { route, params };
    }
    return undefined;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const abort = new AbortController();
    const onClose = () => abort.abort();
    res.once('close', onClose);
    shutdown.addEventListener('abort', onClose, { once: true });
    try {
      // Matched as sent: URL parsing would resolve `..` segments, and no route has any.
      const [path = '/', queryText = ''] = (req.url ?? '/').split(/\?(.*)/s);
      const url = { searchParams: new URLSearchParams(queryText) };
      const found = match(req.method ?? '', path);
      if (!found) throw new HttpError(404, 'no such route');
      const { route, params } = found;
      const who = route.auth === 'open' ? {} : await caller(req);
      if (route.auth === 'certificate') {
        if (!who.identity) throw new HttpError(401, 'a valid, unrevoked client certificate is required');
      } else if (route.auth !== 'open') {
        if (!who.user) throw new HttpError(401, 'authentication required (a bearer token or a session)', { 'www-authenticate': 'Bearer' });
        if (!roleAllows(who.user.role, route.auth)) throw new HttpError(403, `this needs the ${route.auth} role (${who.user.name} is ${who.user.role})`);
      }
      if (listener === 'api' && route.method !== 'GET') checkOrigin(req, who.via === 'cookie' || route.auth === 'open');
      const body = await readBody(req, route);
      const reply = await route.handle({
        params, query: url.searchParams, body, headers: req.headers, signal: abort.signal,
        ...(req.socket.remoteAddress ? { remoteAddress: req.socket.remoteAddress } : {}),
        ...(who.identity ? { identity: who.identity } : {}),
        ...(who.user ? { user: who.user } : {}),
      }, res);
      if (reply) send(res, reply);
    } catch (err) {
      if (err instanceof HttpError) {
        send(res, { status: err.status, json: { error: err.message }, headers: err.headers });
      } else {
        log(`internal error answering ${req.method} ${req.url}: ${(err as Error).stack ?? String(err)}`);
        send(res, { status: 500, json: { error: 'internal error' } });
      }
    } finally {
      shutdown.removeEventListener('abort', onClose);
    }
  };

  return { handle, match };
}

/**
 * A write must come from the API's own origin: a browser sends Origin with every cross-site
 * write, so a page elsewhere cannot ride on the user's session cookie. Writes made with the
 * cookie (and logins) must carry Origin; a bearer-token client (no ambient credential) may leave
 * it out, but one it sends must still match.
 */
function checkOrigin(req: IncomingMessage, required: boolean): void {
  const origin = req.headers.origin;
  if (origin === undefined) {
    if (required) throw new HttpError(403, 'a write with a session needs an Origin header');
    return;
  }
  const host = req.headers.host;
  if (host === undefined || origin !== `https://${host}`) throw new HttpError(403, `Origin ${JSON.stringify(origin)} is not this API's`);
}

async function readBody(req: IncomingMessage, route: Route): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  const limit = route.maxBodyBytes ?? MAX_BODY_BYTES;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new HttpError(413, `the body is larger than ${limit} bytes`);
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (!route.body) {
    if (text.trim() !== '') throw new HttpError(400, 'this route takes no body');
    return undefined;
  }
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json') throw new HttpError(415, 'the body must be application/json');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new HttpError(400, `the body is not JSON: ${(err as Error).message}`);
  }
  const parsed = route.body.safeParse(json);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.length ? `${i.path.join('.')}: ` : ''}${i.message}`);
    throw new HttpError(400, `invalid body: ${issues.join('; ')}`);
  }
  return parsed.data;
}

export function send(res: ServerResponse, reply: RouteReply): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  const body = reply.json === undefined ? '' : `${JSON.stringify(reply.json)}\n`;
  res.writeHead(reply.status, {
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    ...(reply.json === undefined ? {} : { 'content-type': 'application/json; charset=utf-8' }),
    ...reply.headers,
  });
  res.end(body);
}
