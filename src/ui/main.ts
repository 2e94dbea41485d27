/**
 * Cairn's web UI (DESIGN §9): a page served by the master (dist/ui), no framework. Everything it
 * shows comes from the master's `/api/v1` with the session cookie a login made; the server
 * checks roles, the page only leaves out buttons a role may not use. Screens are hash routes:
 * #/targets, #/targets/NAME, #/runs, #/runs/ID, #/revisions, #/admin.
 *
 * Elements are built with the DOM (textContent, never innerHTML), so nothing a target, a diff or
 * a fact holds can become markup; the Content Security Policy allows no inline script or style.
 */

type Role = 'viewer' | 'operator' | 'admin';
interface Me { name: string; role: Role }

interface LastRun { id: string; mode: string; status?: string; finished?: string; revision?: string; changed?: number; failed?: number }
interface TargetRow { name: string; connected: boolean; agent_version?: string; groups: string[]; last_run: LastRun | null }
interface NodeResult { ref: string; id: string; status: string; action: string; reason?: string; diff?: string; error?: string; ms: number; changes?: string[] }
interface TargetOutcome { name: string; status: string; counts?: Record<string, number>; nodes?: NodeResult[]; error?: string; stdout?: string; stderr?: string }
interface RunRecord {
  id: string; mode: string; targets: string[]; state: string; cancelled?: boolean; interrupted?: string; requested_by?: string; revision?: string;
  created: string; started?: string; finished?: string;
  report?: { targets: TargetOutcome[] };
  summary?: { statuses: Record<string, string>; changed: number; failed: number };
}
type RunEvent =
  | { seq: number; type: 'run'; state: string; cancelled?: boolean; interrupted?: string }
  | { seq: number; type: 'target'; target: string; phase: 'started' }
  | { seq: number; type: 'target'; target: string; phase: 'finished'; outcome: TargetOutcome }
  | { seq: number; type: 'node'; target: string; node: NodeResult }
  | { seq: number; type: 'log'; target: string; stream: string; data: string; ref?: string };

const ROLES: Role[] = ['viewer', 'operator', 'admin'];

let me: Me | undefined;
/** Cleanups of the screen shown (its event stream): run when another screen replaces it. */
let leaving: (() => void)[] = [];

class ApiError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(`/api/v1${path}`, {
    method, credentials: 'same-origin',
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  if (!res.ok) {
    if (res.status === 401 && path !== '/login') {
      me = undefined;
      showLogin('Your session has ended: log in again.');
    }
    throw new ApiError(res.status, (json as { error?: string } | undefined)?.error ?? `HTTP ${res.status}`);
  }
  return json as T;
}

type Child = Node | string | number | null | undefined | false;

/** An element with attributes (`on*` functions become listeners) and children (strings become text). */
function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, unknown> = {}, ...children: (Child | Child[])[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === false || value === null) continue;
    if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value as EventListener);
    else if (key === 'class') el.className = String(value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function can(role: Role): boolean {
  return me !== undefined && ROLES.indexOf(me.role) >= ROLES.indexOf(role);
}

function main(): HTMLElement {
  return document.getElementById('main')!;
}

function show(title: string, ...content: (Child | Child[])[]): void {
  document.title = `${title} · Cairn`;
  main().replaceChildren(h('h1', {}, title), ...content.flat().filter((c): c is Node | string => c !== null && c !== undefined && c !== false).map((c) => (typeof c === 'number' ? String(c) : c)));
}

function ago(iso: string | undefined): string {
  if (!iso) return '';
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86_400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86_400)} days ago`;
}

function badge(text: string, kind = text): HTMLElement {
  return h('span', { class: `badge ${kind}` }, text);
}

function errorLine(err: unknown): HTMLElement {
  return h('p', { class: 'error', role: 'alert' }, (err as Error).message);
}

/** A unified diff, each line marked added, removed or a hunk header (by class, not colour alone: the +/- stay). */
function diffBlock(text: string, label: string): HTMLElement {
  const pre = h('pre', { class: 'diff', 'aria-label': label, tabindex: 0 });
  for (const line of text.replace(/\n$/, '').split('\n')) {
    const kind = line.startsWith('+++') || line.startsWith('---') ? '' : line.startsWith('+') ? 'add' : line.startsWith('-') ? 'del' : line.startsWith('@@') ? 'hunk' : '';
    pre.append(kind ? h('span', { class: kind }, line) : `${line}\n`);
  }
  return pre;
}

// ── login ──────────────────────────────────────────────────────────────────────────────────

function showLogin(message?: string): void {
  for (const f of leaving) f();
  leaving = [];
  document.getElementById('nav')!.hidden = true;
  document.getElementById('who')!.replaceChildren();
  const token = h('input', { id: 'token', name: 'token', type: 'password', autocomplete: 'off', required: true, 'aria-describedby': 'token-help' });
  const status = h('p', { role: 'status' }, message ?? '');
  const form = h('form', {
    onsubmit: async (e: Event) => {
      e.preventDefault();
      try {
        await api('POST', '/login', { token: token.value.trim() });
        await start();
      } catch (err) {
        status.replaceChildren(errorLine(err));
      }
    },
  },
  h('label', { for: 'token' }, 'API token'),
  token,
  h('small', { id: 'token-help', class: 'muted' }, 'An API token made with cairn master api-token create --role viewer|operator|admin.'),
  h('button', { type: 'submit' }, 'Log in'));
  const user = h('input', { id: 'login-user', name: 'username', autocomplete: 'username', required: true });
  const password = h('input', { id: 'login-password', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const passwordForm = h('form', {
    'aria-labelledby': 'password-login',
    onsubmit: async (e: Event) => {
      e.preventDefault();
      try {
        await api('POST', '/login', { user: user.value.trim(), password: password.value });
        await start();
      } catch (err) {
        password.value = '';
        status.replaceChildren(errorLine(err));
      }
    },
  },
  h('h2', { id: 'password-login' }, 'Or with a user name and password'),
  h('label', { for: 'login-user' }, 'User'),
  user,
  h('label', { for: 'login-password' }, 'Password'),
  password,
  h('small', { class: 'muted' }, 'A user made with cairn master user add NAME --role viewer|operator|admin.'),
  h('button', { type: 'submit' }, 'Log in with password'));
  document.title = 'Log in · Cairn';
  main().replaceChildren(h('div', { class: 'login' }, h('h1', {}, 'Log in to Cairn'), form, passwordForm, status));
  token.focus();
}

// ── targets ────────────────────────────────────────────────────────────────────────────────

/**
 * What a target's last run says about it now: a run older than the master's stale threshold
 * (`--stale-after`) is stale, since its status may no longer say how the target is.
 */
function targetStatus(run: LastRun | null, staleMs: number): string {
  if (!run) return 'never run';
  if (!run.status) return run.finished ? 'unknown' : 'running';
  let status = run.status === 'ok' ? ((run.changed ?? 0) > 0 ? 'changed' : 'unchanged') : run.status;
  if (run.finished && Date.now() - Date.parse(run.finished) > staleMs && status !== 'failed' && status !== 'unreachable') status = 'stale';
  return status;
}

async function targetsScreen(): Promise<void> {
  const data = await api<{ head: string | null; stale_after_s: number; groups_problem?: string; targets: TargetRow[] }>('GET', '/targets');
  const staleMs = data.stale_after_s * 1000;
  const groupNames = [...new Set(data.targets.flatMap((t) => t.groups))].sort();
  const groupFilter = h('select', { id: 'group-filter' }, h('option', { value: '' }, 'all'), ...groupNames.map((g) => h('option', { value: g }, g)));
  const statusFilter = h('select', { id: 'status-filter' },
    ...['all', 'changed', 'failed', 'unchanged', 'unreachable', 'stale', 'never run'].map((s) => h('option', { value: s }, s)));
  const search = h('input', { id: 'target-search', type: 'search', placeholder: 'name' });
  const connection = h('select', { id: 'connection-filter' }, ...['all', 'connected', 'disconnected'].map((s) => h('option', { value: s }, s)));
  const tbody = h('tbody');
  const count = h('p', { class: 'muted', role: 'status' });
  const render = () => {
    const q = search.value.trim().toLowerCase();
    const rows = data.targets.filter((t) => {
      const status = targetStatus(t.last_run, staleMs);
      return (statusFilter.value === 'all' || status === statusFilter.value)
        && (groupFilter.value === '' || t.groups.includes(groupFilter.value))
        && (connection.value === 'all' || (connection.value === 'connected') === t.connected)
        && (q === '' || t.name.toLowerCase().includes(q));
    });
    tbody.replaceChildren(...rows.map((t) => {
      const status = targetStatus(t.last_run, staleMs);
      const run = t.last_run;
      const behind = data.head !== null && run?.revision !== undefined && run.revision !== data.head;
      return h('tr', { 'data-target': t.name, 'data-status': status },
        h('td', {}, h('a', { href: `#/targets/${encodeURIComponent(t.name)}` }, t.name)),
        h('td', {}, badge(status, status.replace(' ', '-')), ' ', run?.finished ? h('span', { class: 'muted' }, ago(run.finished)) : null),
        h('td', {}, !run?.revision ? h('span', { class: 'muted' }, '—') : behind ? badge('behind', 'behind') : badge('current', 'current')),
        h('td', {}, t.connected ? badge('connected') : badge('disconnected')),
        h('td', { class: 'groups' }, t.groups.length ? t.groups.join(', ') : h('span', { class: 'muted' }, '—')),
        h('td', {}, run ? h('a', { href: `#/runs/${run.id}` }, `${run.mode} ${run.id}`) : '—'),
        h('td', { class: 'muted' }, t.agent_version ?? ''));
    }));
    count.textContent = `${rows.length} of ${data.targets.length} targets`;
  };
  for (const el of [statusFilter, connection, groupFilter]) el.addEventListener('change', render);
  search.addEventListener('input', render);
  render();
  show('Targets',
    h('div', { class: 'filters', role: 'search' },
      h('label', { for: 'target-search' }, 'Search', search),
      h('label', { for: 'status-filter' }, 'Status', statusFilter),
      h('label', { for: 'connection-filter' }, 'Agent', connection),
      h('label', { for: 'group-filter' }, 'Group', groupFilter)),
    data.groups_problem ? h('p', { role: 'alert' }, `Groups unknown: ${data.groups_problem}`) : null,
    count,
    h('table', {}, h('caption', { class: 'muted' }, data.head ? `Newest pushed revision ${data.head.slice(0, 12)}` : 'Nothing pushed yet'),
      h('thead', {}, h('tr', {}, ...['Target', 'Last status', 'Revision', 'Agent', 'Groups', 'Last run', 'Version'].map((c) => h('th', { scope: 'col' }, c)))), tbody));
}

// ── a target ───────────────────────────────────────────────────────────────────────────────

interface TargetDetail {
  name: string; connected: boolean; agent_version: string; connected_at: string; disconnected_at?: string;
  facts: Record<string, unknown>; last_runs: RunRecord[];
  certificate: { serial: string; not_after: string; status: string } | null;
}

function flatten(value: unknown, prefix: string, out: [string, string][]): void {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) flatten(v, prefix ? `${prefix}.${k}` : k, out);
  } else out.push([prefix, typeof value === 'string' ? value : JSON.stringify(value)]);
}

async function startRun(mode: 'plan' | 'apply', targets: string[], status: HTMLElement): Promise<void> {
  try {
    const { id } = await api<{ id: string }>('POST', '/runs', { mode, targets, diff: true });
    location.hash = `#/runs/${id}`;
  } catch (err) {
    status.replaceChildren(errorLine(err));
  }
}

async function targetScreen(name: string): Promise<void> {
  const t = await api<TargetDetail>('GET', `/targets/${encodeURIComponent(name)}`);
  const status = h('div', { role: 'status' });
  const actions = can('operator')
    ? h('div', { class: 'bar' },
      h('button', { type: 'button', id: 'plan', onclick: () => startRun('plan', [name], status) }, 'Plan'),
      h('button', { type: 'button', id: 'apply', onclick: () => startRun('apply', [name], status) }, 'Apply'))
    : h('p', { class: 'muted' }, 'Plan and Apply need the operator role.');
  const facts: [string, string][] = [];
  flatten(t.facts, '', facts);
  const cert = t.certificate;
  const certDays = cert ? Math.round((Date.parse(cert.not_after) - Date.now()) / 86_400_000) : 0;
  const revoke = cert && cert.status === 'valid' && can('admin')
    ? h('button', {
      type: 'button', class: 'danger', id: 'revoke',
      onclick: async () => {
        if (!confirm(`Revoke the certificate of ${name}? Its agent is disconnected at once and cannot connect again.`)) return;
        try {
          await api('POST', `/certificates/${cert.serial}/revoke`);
          await targetScreen(name);
        } catch (err) {
          status.replaceChildren(errorLine(err));
        }
      },
    }, 'Revoke certificate')
    : null;
  show(`Target ${name}`,
    h('div', { class: 'bar' }, t.connected ? badge('connected') : badge('disconnected'),
      h('span', { class: 'muted', id: 'connection' }, t.connected ? `connected ${ago(t.connected_at)}` : `disconnected ${ago(t.disconnected_at)}`),
      h('span', { class: 'muted' }, `agent ${t.agent_version}`)),
    actions, status,
    h('h2', {}, 'Certificate'),
    cert
      ? h('p', { id: 'certificate' }, badge(cert.status), ` serial ${cert.serial}, expires ${cert.not_after.slice(0, 10)} (${certDays} days) `, revoke)
      : h('p', { class: 'muted' }, 'No certificate.'),
    h('h2', {}, 'Run history'),
    t.last_runs.length === 0 ? h('p', { class: 'muted' }, 'No runs yet.') : runTable(t.last_runs),
    h('h2', {}, 'Facts'),
    h('dl', { class: 'facts' }, ...facts.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])));
}

function runTable(runs: RunRecord[]): HTMLElement {
  return h('table', {},
    h('thead', {}, h('tr', {}, ...['Run', 'Mode', 'Targets', 'State', 'Outcome', 'Changed', 'Started', 'By'].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, ...runs.map((r) => {
      const statuses = r.summary ? [...new Set(Object.values(r.summary.statuses))] : [];
      return h('tr', { 'data-run': r.id },
        h('td', {}, h('a', { href: `#/runs/${r.id}` }, r.id)),
        h('td', {}, r.mode),
        h('td', {}, r.targets.join(', ')),
        h('td', r.interrupted ? { title: r.interrupted } : {}, r.interrupted ? 'interrupted' : r.cancelled ? 'cancelled' : r.state),
        h('td', {}, ...statuses.map((s) => badge(s))),
        h('td', {}, r.summary ? String(r.summary.changed) : ''),
        h('td', { class: 'muted' }, ago(r.started ?? r.created)),
        h('td', { class: 'muted' }, r.requested_by ?? ''));
    })));
}

// ── a run ──────────────────────────────────────────────────────────────────────────────────

async function runScreen(id: string): Promise<void> {
  const run = await api<RunRecord>('GET', `/runs/${id}`);
  const seqs: number[] = [];
  let applied = 0;
  let reconnects = 0;
  const counts = { changed: 0, 'would-change': 0, unchanged: 0, failed: 0, skipped: 0 };
  const summary = h('div', { class: 'summary', id: 'summary', 'aria-live': 'polite' });
  const state = h('span', { id: 'run-state' });
  const stream = h('span', { id: 'stream', class: 'muted', 'data-seqs': '' });
  const onlyChanged = h('input', { type: 'checkbox', id: 'only-changed' });
  const sections = new Map<string, { section: HTMLElement; status: HTMLElement; tbody: HTMLElement; log: HTMLElement }>();
  const targetsBox = h('div', { id: 'targets' });
  const cancel = can('operator')
    ? h('button', {
      type: 'button', class: 'danger', id: 'cancel',
      onclick: async () => {
        try {
          await api('POST', `/runs/${id}/cancel`);
        } catch (err) {
          stream.after(errorLine(err));
        }
      },
    }, 'Cancel run')
    : null;

  const section = (target: string) => {
    let s = sections.get(target);
    if (!s) {
      const status = h('span', { class: 'target-status' });
      const tbody = h('tbody');
      const log = h('pre', { class: 'diff', hidden: true });
      const el = h('section', { 'data-target': target, 'aria-label': `Target ${target}` },
        h('h2', {}, h('a', { href: `#/targets/${encodeURIComponent(target)}` }, target), ' ', status),
        h('table', {}, h('thead', {}, h('tr', {}, ...['Status', 'Resource', 'Action', 'Time', 'Detail'].map((c) => h('th', { scope: 'col' }, c)))), tbody), log);
      s = { section: el, status, tbody, log };
      sections.set(target, s);
      targetsBox.append(el);
    }
    return s;
  };
  for (const t of run.targets) section(t);

  const renderSummary = () => {
    summary.replaceChildren(...Object.entries(counts).filter(([k, n]) => n > 0 || k !== 'would-change').map(([k, n]) => h('span', { class: `badge ${k}`, 'data-count': k }, `${n} ${k}`)));
  };
  const filter = () => {
    for (const { tbody } of sections.values()) {
      for (const row of Array.from(tbody.children) as HTMLElement[]) row.hidden = onlyChanged.checked && !['changed', 'would-change', 'failed'].includes(row.dataset.status ?? '');
    }
  };
  onlyChanged.addEventListener('change', filter);

  const setState = (text: string, cancelled?: boolean, interrupted?: string) => {
    // Interrupted: the master running it stopped before it ended (the reason says which).
    state.replaceChildren(badge(interrupted ? 'interrupted' : cancelled ? 'cancelled' : text, text), interrupted ? h('span', { class: 'muted' }, ` ${interrupted}`) : '');
    if (cancel) cancel.hidden = text === 'finished';
  };
  setState(run.state, run.cancelled, run.interrupted);

  const apply = (e: RunEvent) => {
    if (e.type === 'run') setState(e.state, e.cancelled, e.interrupted);
    else if (e.type === 'target' && e.phase === 'started') section(e.target).status.replaceChildren(badge('running'));
    else if (e.type === 'target' && e.phase === 'finished') {
      const s = section(e.target);
      s.status.replaceChildren(badge(e.outcome.status), e.outcome.error ? h('span', { class: 'node-error' }, ` ${e.outcome.error}`) : '');
    } else if (e.type === 'node') {
      const n = e.node;
      const key = n.status as keyof typeof counts;
      if (key in counts) counts[key]++;
      renderSummary();
      const detail: Child[] = [];
      if (n.error) detail.push(h('span', { class: 'node-error' }, n.error));
      else if (n.reason) detail.push(h('span', { class: 'muted' }, n.reason));
      if (n.diff) detail.push(h('details', {}, h('summary', {}, 'Diff'), diffBlock(n.diff, `Diff of ${n.ref}`)));
      const row = h('tr', { 'data-seq': e.seq, 'data-ref': n.ref, 'data-status': n.status },
        h('td', {}, badge(n.status)), h('td', {}, n.ref), h('td', {}, n.action), h('td', { class: 'muted' }, `${n.ms} ms`), h('td', {}, ...detail));
      row.hidden = onlyChanged.checked && !['changed', 'would-change', 'failed'].includes(n.status);
      section(e.target).tbody.append(row);
    } else if (e.type === 'log') {
      const s = section(e.target);
      s.log.hidden = false;
      s.log.append(`${e.stream === 'stderr' ? '! ' : ''}${e.data}${e.data.endsWith('\n') ? '' : '\n'}`);
    }
  };

  // The browser's EventSource reconnects by itself with Last-Event-ID: the master sends what came
  // after it. An event already shown (a seq not past the last) is not applied twice.
  const source = new EventSource(`/api/v1/runs/${encodeURIComponent(id)}/events`);
  const describe = (text: string) => {
    stream.textContent = `${text} · ${applied} events${reconnects ? ` · reconnected ${reconnects}×` : ''}`;
    stream.dataset.seqs = seqs.join(',');
    stream.dataset.state = text;
  };
  let wasOpen = false;
  source.addEventListener('open', () => {
    if (wasOpen) reconnects++;
    wasOpen = true;
    describe('live');
  });
  source.addEventListener('error', () => {
    if (source.readyState === EventSource.CLOSED) describe('closed');
    else describe('reconnecting');
  });
  const onEvent = (m: MessageEvent<string>) => {
    const e = JSON.parse(m.data) as RunEvent;
    seqs.push(e.seq);
    if (e.seq <= applied) return describe('live');
    applied = e.seq;
    apply(e);
    if (e.type === 'run' && e.state === 'finished') {
      source.close();
      describe('finished');
    } else describe('live');
  };
  for (const type of ['run', 'target', 'node', 'log']) source.addEventListener(type, onEvent as EventListener);
  leaving.push(() => source.close());
  renderSummary();

  show(`Run ${id}`,
    h('div', { class: 'bar' }, h('span', {}, `${run.mode} of ${run.targets.join(', ')}`), state, stream, cancel),
    h('p', { class: 'muted' }, `requested ${ago(run.created)}${run.requested_by ? ` by ${run.requested_by}` : ''}${run.revision ? ` · revision ${run.revision.slice(0, 12)}` : ''}`),
    summary,
    h('div', { class: 'filters' }, h('label', { class: 'check', for: 'only-changed' }, onlyChanged, 'Changed / failed only')),
    targetsBox);
}

// ── runs history ───────────────────────────────────────────────────────────────────────────

async function runsScreen(): Promise<void> {
  const { runs } = await api<{ runs: RunRecord[] }>('GET', '/runs?limit=500');
  const names = [...new Set(runs.flatMap((r) => r.targets))].sort();
  const target = h('select', { id: 'runs-target' }, h('option', { value: '' }, 'all'), ...names.map((n) => h('option', { value: n }, n)));
  const status = h('select', { id: 'runs-status' }, ...['all', 'ok', 'failed', 'unreachable', 'skipped', 'running', 'cancelled', 'interrupted'].map((s) => h('option', { value: s }, s)));
  const changed = h('input', { type: 'checkbox', id: 'runs-changed' });
  const box = h('div');
  const render = () => {
    const rows = runs.filter((r) => (target.value === '' || r.targets.includes(target.value))
      && (status.value === 'all'
        || (status.value === 'running' ? r.state !== 'finished' : status.value === 'cancelled' ? r.cancelled === true
          : status.value === 'interrupted' ? r.interrupted !== undefined
          : Object.values(r.summary?.statuses ?? {}).includes(status.value)))
      && (!changed.checked || (r.summary?.changed ?? 0) > 0));
    box.replaceChildren(h('p', { class: 'muted', role: 'status' }, `${rows.length} of ${runs.length} runs`), runTable(rows));
  };
  for (const el of [target, status, changed]) el.addEventListener('change', render);
  render();
  show('Runs',
    h('div', { class: 'filters' },
      h('label', { for: 'runs-target' }, 'Target', target),
      h('label', { for: 'runs-status' }, 'Status', status),
      h('label', { class: 'check', for: 'runs-changed' }, changed, 'Had changes')),
    box);
}

// ── revisions ──────────────────────────────────────────────────────────────────────────────

interface Revision { id: string; parent?: string; created: string; files: number; head: boolean }
interface RevisionDiff { id: string; against: string | null; files: { path: string; change: string; patch?: string }[] }

async function revisionsScreen(): Promise<void> {
  const { revisions } = await api<{ revisions: Revision[] }>('GET', '/revisions');
  if (revisions.length === 0) return show('Revisions', h('p', { class: 'muted' }, 'Nothing pushed yet (cairn push).'));
  const option = (r: Revision) => h('option', { value: r.id }, `${r.id.slice(0, 12)} · ${new Date(r.created).toLocaleString()}${r.head ? ' (newest)' : ''}`);
  const from = h('select', { id: 'rev-from' }, h('option', { value: '' }, 'its parent'), ...revisions.map(option));
  const to = h('select', { id: 'rev-to' }, ...revisions.map(option));
  const out = h('div', { id: 'rev-diff', 'aria-live': 'polite' });
  const compare = async () => {
    try {
      const d = await api<RevisionDiff>('GET', `/revisions/${to.value}/diff${from.value ? `?against=${from.value}` : ''}`);
      out.replaceChildren(
        h('p', {}, `${d.files.length} file${d.files.length === 1 ? '' : 's'} changed from ${d.against ? d.against.slice(0, 12) : 'nothing'} to ${d.id.slice(0, 12)}`),
        ...d.files.map((f) => h('section', { 'data-path': f.path }, h('h2', {}, badge(f.change, f.change === 'removed' ? 'failed' : 'changed'), ' ', f.path),
          f.patch ? diffBlock(f.patch, `Diff of ${f.path}`) : h('p', { class: 'muted' }, 'binary file'))));
    } catch (err) {
      out.replaceChildren(errorLine(err));
    }
  };
  show('Revisions',
    h('table', {}, h('thead', {}, h('tr', {}, ...['Revision', 'Pushed', 'Files', 'Parent'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, ...revisions.map((r) => h('tr', {}, h('td', {}, r.id.slice(0, 12), r.head ? ' ' : '', r.head ? badge('newest', 'current') : null),
        h('td', {}, new Date(r.created).toLocaleString()), h('td', {}, String(r.files)), h('td', { class: 'muted' }, r.parent?.slice(0, 12) ?? '—'))))),
    h('h2', {}, 'Compare'),
    h('div', { class: 'filters' }, h('label', { for: 'rev-from' }, 'From', from), h('label', { for: 'rev-to' }, 'To', to),
      h('button', { type: 'button', id: 'rev-compare', onclick: compare }, 'Show diff')),
    out);
}

// ── certificates and tokens ────────────────────────────────────────────────────────────────

interface Certificate { serial: string; name: string; not_after: string; issued: string; via: string; status: string; revoked?: string }
interface EnrolToken { id: string; name: string; created: string; expires: string; uses_left: number; replace: boolean }

async function adminScreen(): Promise<void> {
  if (!can('admin')) return show('Certificates and tokens', h('p', { class: 'error', role: 'alert' }, 'This needs the admin role.'));
  const [certs, tokens] = await Promise.all([api<Certificate[]>('GET', '/certificates'), api<EnrolToken[]>('GET', '/tokens')]);
  const status = h('div', { role: 'status' });
  const act = (f: () => Promise<unknown>) => async () => {
    try {
      await f();
      await adminScreen();
    } catch (err) {
      status.replaceChildren(errorLine(err));
    }
  };
  const name = h('input', { id: 'token-name', required: true, pattern: '[A-Za-z0-9][A-Za-z0-9.\\-]*' });
  const hours = h('input', { id: 'token-hours', type: 'number', min: 1, max: 8784, value: 1, required: true });
  const uses = h('input', { id: 'token-uses', type: 'number', min: 1, max: 10000, value: 1, required: true });
  const replace = h('input', { id: 'token-replace', type: 'checkbox' });
  const made = h('div', { 'aria-live': 'polite' });
  const form = h('form', {
    class: 'filters',
    onsubmit: async (e: Event) => {
      e.preventDefault();
      try {
        const t = await api<{ token: string; name: string; expires: string }>('POST', '/tokens', { name: name.value, ttl_s: Number(hours.value) * 3600, uses: Number(uses.value), replace: replace.checked });
        const list = await api<EnrolToken[]>('GET', '/tokens');
        tokenBody.replaceChildren(...list.map(tokenRow));
        made.replaceChildren(h('p', {}, `Enrolment token for ${t.name}, until ${t.expires}. It is shown this once: copy it now.`),
          h('p', { class: 'secret', id: 'new-token' }, t.token));
      } catch (err) {
        made.replaceChildren(errorLine(err));
      }
    },
  },
  h('label', { for: 'token-name' }, 'Agent name', name), h('label', { for: 'token-hours' }, 'Valid for (hours)', hours),
  h('label', { for: 'token-uses' }, 'Uses', uses), h('label', { class: 'check', for: 'token-replace' }, replace, 'May replace a valid certificate'),
  h('button', { type: 'submit', id: 'create-token' }, 'Create token'));
  const tokenRow = (t: EnrolToken) => h('tr', { 'data-token': t.id }, h('td', {}, t.id), h('td', {}, t.name), h('td', {}, t.expires), h('td', {}, String(t.uses_left)),
    h('td', {}, h('button', { type: 'button', class: 'secondary', 'aria-label': `Withdraw token ${t.id}`, onclick: act(() => api('DELETE', `/tokens/${t.id}`)) }, 'Withdraw')));
  const tokenBody = h('tbody', {}, ...tokens.map(tokenRow));
  show('Certificates and tokens', status,
    h('h2', {}, 'Certificates'),
    h('table', {}, h('thead', {}, h('tr', {}, ...['Agent', 'Serial', 'Status', 'Expires', 'Issued', ''].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, ...certs.map((c) => h('tr', { 'data-serial': c.serial },
        h('td', {}, c.name), h('td', {}, c.serial), h('td', {}, badge(c.status)), h('td', {}, c.not_after.slice(0, 10)), h('td', { class: 'muted' }, `${ago(c.issued)} (${c.via})`),
        h('td', {}, c.status === 'valid'
          ? h('button', {
            type: 'button', class: 'danger', 'aria-label': `Revoke ${c.name} (${c.serial})`,
            onclick: () => confirm(`Revoke the certificate of ${c.name}?`) && act(() => api('POST', `/certificates/${c.serial}/revoke`))(),
          }, 'Revoke')
          : ''))))),
    h('h2', {}, 'Enrolment tokens'),
    form, made,
    h('table', {}, h('thead', {}, h('tr', {}, ...['Id', 'Agent', 'Expires', 'Uses left', ''].map((c) => h('th', { scope: 'col' }, c)))), tokenBody));
}

// ── routing ────────────────────────────────────────────────────────────────────────────────

async function route(): Promise<void> {
  if (!me) return;
  for (const f of leaving) f();
  leaving = [];
  const [, screen = 'targets', arg] = location.hash.split('/').map((p) => decodeURIComponent(p));
  for (const a of Array.from(document.querySelectorAll('#nav a'))) {
    if (a.getAttribute('href') === `#/${screen}`) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  // What the last screen showed goes at once: nothing stale is read (or clicked) while this one loads.
  main().setAttribute('aria-busy', 'true');
  main().replaceChildren(h('p', { class: 'muted' }, 'Loading…'));
  try {
    if (screen === 'targets' && arg) await targetScreen(arg);
    else if (screen === 'runs' && arg) await runScreen(arg);
    else if (screen === 'runs') await runsScreen();
    else if (screen === 'revisions') await revisionsScreen();
    else if (screen === 'admin') await adminScreen();
    else await targetsScreen();
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return;
    show('Something went wrong', errorLine(err));
  }
  main().removeAttribute('aria-busy');
  main().focus();
}

async function start(): Promise<void> {
  try {
    me = await api<Me>('GET', '/whoami');
  } catch {
    if (!me) showLogin();
    return;
  }
  document.getElementById('nav')!.hidden = false;
  document.getElementById('nav-admin')!.hidden = !can('admin');
  document.getElementById('who')!.replaceChildren(
    h('span', { id: 'me' }, `${me.name} (${me.role})`),
    h('button', {
      type: 'button', class: 'secondary', id: 'logout',
      onclick: async () => {
        await api('POST', '/logout').catch(() => undefined);
        me = undefined;
        showLogin('Logged out.');
      },
    }, 'Log out'));
  await route();
}

window.addEventListener('hashchange', () => void route());
void start();
