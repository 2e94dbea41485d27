/**
 * The master's route table (DESIGN §9): every request either matches one of a fixed list of routes,
 * built once when the master starts, or gets 404. A route says which listener serves it, who may
 * call it, and the zod schema of its JSON body; the router (router.ts) enforces all three before
 * the handler runs, so a handler sees only an authenticated caller and a parsed body.
 */
import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import type { z } from 'zod';

/** API roles, each allowed what the ones before it are: viewer < operator < admin. */
export type Role = 'viewer' | 'operator' | 'admin';
export const ROLES: readonly Role[] = ['viewer', 'operator', 'admin'];

export function roleAllows(held: Role, needed: Role): boolean {
  return ROLES.indexOf(held) >= ROLES.indexOf(needed);
}

/** Who an agent is: taken only from its verified client certificate, never from what it sends. */
export interface AgentIdentity {
  /** The certificate's CN (= its SAN): the agent's target name. */
  name: string;
  /** The certificate's serial, upper-case hex without leading zeros (x509.ts normalSerial). */
  serial: string;
}

/** A caller of the API port: from a bearer token or a session cookie. */
export interface ApiUser {
  name: string;
  role: Role;
}

export interface RouteRequest {
  /** `:name` segments of the route's path; each already matched SAFE_PARAM. */
  params: Record<string, string>;
  query: URLSearchParams;
  /** The JSON body parsed by the route's `body` schema (undefined when the route has none). */
  body: unknown;
  /** On the agent port, for `auth: 'certificate'` routes. */
  identity?: AgentIdentity;
  /** On the API port, for role routes. */
  user?: ApiUser;
  headers: IncomingHttpHeaders;
  /** The client's address (the TCP peer), for per-client limits. */
  remoteAddress?: string;
  /** Aborted when the client goes away or the master shuts down (for long answers such as SSE). */
  signal: AbortSignal;
}

/** What the router sends: `json` as the body (application/json) with `status` and `headers`. */
export interface RouteReply {
  status: number;
  json?: unknown;
  headers?: Record<string, string>;
}

export interface Route {
  method: 'GET' | 'POST' | 'DELETE';
  /** Literal segments and `:param` segments, e.g. '/api/v1/runs/:id'. */
  path: string;
  listener: 'agent' | 'api';
  /**
   * 'open': anyone. 'certificate': an agent with a valid, unrevoked client certificate (agent
   * port only). A role: an API user holding at least that role (API port only).
   */
  auth: 'open' | 'certificate' | Role;
  /** Schema of the JSON body; a route without one takes no body. */
  body?: z.ZodType;
  /** Largest body this route takes (default router.ts's MAX_BODY_BYTES): compiled runs are larger. */
  maxBodyBytes?: number;
  /**
   * Answers the request: a RouteReply for the router to send, or undefined when the handler wrote
   * the response itself (server-sent events, a file).
   */
  handle(req: RouteRequest, res: ServerResponse): Promise<RouteReply | undefined>;
}

/** What a `:param` segment may hold: no slashes, no dots-only names, nothing to escape. */
export const SAFE_PARAM = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,199}$/;

/** An error a handler throws to answer with `status` and `{error: message}`. */
export class HttpError extends Error {
  constructor(readonly status: number, message: string, readonly headers: Record<string, string> = {}) {
    super(message);
    this.name = 'HttpError';
  }
}
