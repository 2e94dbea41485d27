/**
 * The web UI's files (DESIGN §9) on the API port: the page, its script and its style sheet, built
 * by scripts/build.mjs into dist/ui. They are open routes (the login form is part of the page);
 * every piece of data the page shows comes from the API, which checks the session cookie. The
 * page runs under a strict Content Security Policy: only this origin's script and style, no
 * inline script or style, no framing, no requests elsewhere (it works without any network).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ServerResponse } from 'node:http';
import { HttpError, type Route } from './routes.ts';

export const UI_CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
  + "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const FILES: { path: string; file: string; type: string }[] = [
  { path: '/ui', file: 'index.html', type: 'text/html; charset=utf-8' },
  { path: '/ui/app.js', file: 'app.js', type: 'text/javascript; charset=utf-8' },
  { path: '/ui/app.css', file: 'app.css', type: 'text/css; charset=utf-8' },
];

/** The UI's routes, serving the files of `dir` (undefined or missing: 503, saying the UI is not built). */
export function uiRoutes(dir: string | undefined): Route[] {
  const serve = async (file: string, type: string, res: ServerResponse): Promise<undefined> => {
    let bytes: Buffer;
    try {
      if (dir === undefined) throw new Error('no folder');
      bytes = await readFile(join(dir, file));
    } catch {
      throw new HttpError(503, 'the web UI is not built into this cairn (npm run build makes dist/ui)');
    }
    res.writeHead(200, {
      'content-type': type,
      'content-security-policy': UI_CSP,
      'x-content-type-options': 'nosniff',
      'x-frame-options': 'DENY',
      'referrer-policy': 'no-referrer',
      'cache-control': 'no-cache',
    });
    res.end(bytes);
    return undefined;
  };
  return [
    {
      method: 'GET', path: '/', listener: 'api', auth: 'open',
      handle: async () => ({ status: 302, headers: { location: '/ui' } }),
    },
    ...FILES.map(({ path, file, type }): Route => ({
      method: 'GET', path, listener: 'api', auth: 'open',
      handle: (_req, res) => serve(file, type, res),
    })),
  ];
}
