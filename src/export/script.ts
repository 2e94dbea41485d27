/**
 * `cairn export --format sh` (DESIGN §11): a compiled run turned into one POSIX shell script that
 * converges the target with no Cairn on it. Pure: the graph in, the script's text out. Each node
 * becomes shell functions from its provider's `shell` trait (ShellProvider); the run order,
 * requisites, notifications and handler flushes are written out from the graph, and the prelude
 * (prelude.ts) carries the rest of engine.ts's semantics at run time.
 */
import type { StateRun } from '../catalog/staterun.ts';
import type { Edge, Graph, GraphNode } from '../graph/build.ts';
import { sha256Hex } from '../lib/digest.ts';
import { InputError, type Diagnostic } from '../lib/errors.ts';
import { shellQuote as q } from '../lib/shell.ts';
import { sensitiveMask, sensitiveValues } from '../graph/sensitive.ts';
import { selectProvider } from '../resources/providers.ts';
import { ApplyError, type Provider, type ShellContext, type ShellProvider, type StagedShell } from '../resources/type.ts';
import { preludeFor } from '../resources/shell-prelude.ts';
import { PRELUDE } from './prelude.ts';
import { pushTo } from '../lib/multimap.ts';
import { dirname } from 'node:path';

export interface ExportInput {
  run: StateRun;
  graph: Graph;
  /** The facts the run was compiled with (provider selection, as the engine makes it). */
  facts: Record<string, unknown>;
}

/** Requisites whose failure skips the node after them (engine.ts BLOCKING). */
const BLOCKING: ReadonlySet<string> = new Set(['require', 'transition']);

/**
 * The script for one target's run. Throws InputError naming every part whose type or provider
 * has no `shell` trait (or no provider suits the target), with its position.
 */
export function exportScript({ run, graph, facts }: ExportInput): string {
  const os = run.os ?? {};
  const index = new Map(graph.nodes.map((n, i) => [n.id, i + 1]));
  const byId = new Map(graph.nodes.map((n) => [n.id, n]));
  const incoming = new Map<string, Edge[]>();
  const outgoing = new Map<string, Edge[]>();
  for (const e of graph.edges) {
    pushTo(incoming, e.to, e);
    pushTo(outgoing, e.from, e);
  }

  // The script must hold the secrets it writes, but its report lines show none (DESIGN §5.13).
  const mask = sensitiveMask(sensitiveValues(graph)) ?? ((text: string) => text);
  const notifiedIds = new Set(graph.edges.filter((e) => e.kind === 'notify').map((e) => e.to));
  const shells = new Map<string, ShellProvider>();
  const problems: Diagnostic[] = [];
  for (const node of graph.nodes) {
    let provider: Provider;
    try {
      provider = selectProvider(node.type, facts, os, node.meta.provider);
    } catch (err) {
      if (!(err instanceof ApplyError)) throw err;
      problems.push({ message: `${mask(node.ref)}: ${err.message}: cannot export it`, ...(node.pos ? { pos: node.pos } : {}) });
      continue;
    }
    if (!provider.shell) {
      problems.push({
        message: `${mask(node.ref)}: the ${node.type} type's provider '${provider.name}' has no shell trait: cannot export it as a shell script`,
        ...(node.pos ? { pos: node.pos } : {}),
        hint: 'leave this part out of the exported target, or run it with cairn apply',
      });
      continue;
    }
    shells.set(node.id, provider.shell);
  }
  if (problems.length) throw new InputError(problems);

  const ix = (id: string) => index.get(id)!;
  const hidden = (node: GraphNode) => (node.meta.sensitive?.length ?? 0) > 0 || (graph.types[node.type]?.sensitive?.length ?? 0) > 0;
  const out: string[] = [];
  const extra: string[] = [];
  /** Handlers' turns (t<i>), which cairn_flush calls. */
  const turns: string[] = [];
  /** Whether a node's fragments call other nodes' functions (ShellContext): then all load at once. */
  let crossRefs = false;
  /** Each node's functions, and the nodes whose turn in cairn_main starts with a fast turn. */
  const nodeDefinitions = new Map<string, string[]>();
  const fastNodes = new Set<string>();
  /** The nodes whose status (s_<i>) the script reads: only theirs is kept (cairn_kept). */
  const statusRead = new Set<number>(graph.handlers.map(ix));
  const status = (k: number | string) => {
    statusRead.add(Number(k));
    return `s_${k}`;
  };

  /**
   * A node's one function, n<fn>: `n<fn> c|a|e|r|d` checks, applies, says whether it exists,
   * refreshes, shows its diff. One function a node rather than one a verb: dash and ash keep
   * functions in a small hash table, and every call walks a chain as long as the functions are
   * many (five a node made a no-op of the standard workload spend most of its time in strcmp).
   */
  const functions = (node: GraphNode, fn: string, desired: Record<string, unknown>, stagedShell?: StagedShell) => {
    const shell = shells.get(node.id)!;
    const ctx = contextFor(node);
    const action = desired.ensure === 'absent' ? 'destroy' : graph.types[node.type]?.createAction ?? 'create';
    // A fragment that says `exit` runs in a subshell, so that exit ends only its step.
    const branch = (verb: string, body: string, subshellIfExit: boolean) => {
      const text = body.replace(/\n+$/, '') || ':';
      return subshellIfExit && /\bexit\b/.test(text) ? `${verb}) (\n${text}\n) ;;` : `${verb})\n${text}\n;;`;
    };
    // A staged apply sets the group's variables: it runs in the script's own shell.
    const apply = stagedShell ? branch('a', stagedShell.apply, false) : branch('a', shell.apply(desired, action, ctx), !shell.inline);
    const branches = [branch('c', shell.check(desired, ctx), true), apply];
    if (shell.exists) branches.push(branch('e', shell.exists(desired, ctx), true));
    if (shell.refresh) branches.push(branch('r', shell.refresh(desired, ctx), true));
    if (shell.diff) branches.push(branch('d', hidden(node) ? "echo '(content hidden)'" : shell.diff(desired, ctx), true));
    // The verb is shifted off: the fragments see no arguments, as when each verb had its function.
    return `n${fn}() {\ncairn_v=$1; shift\ncase $cairn_v in\n${branches.join('\n')}\nesac\n}`;
  };

  /** The cairn_node call that runs a node's turn once its requisites let it. */
  const nodeCall = (node: GraphNode, fn: string, why: string, desired: Record<string, unknown>, checked: 0 | 1) => {
    const shell = shells.get(node.id)!;
    const action = desired.ensure === 'absent' ? 'destroy' : graph.types[node.type]?.createAction ?? 'create';
    const inSync = graph.types[node.type]?.inSync?.reason ?? '';
    const notifies = !node.meta.noop && (outgoing.get(node.id) ?? []).some((e) => e.kind === 'notify');
    const has = [...(shell.refresh ? ['r'] : []), ...(shell.diff ? ['d'] : []), ...(notifies ? ['o'] : [])].join(' ') || '-';
    return `cairn_node ${ix(node.id)} ${fn} ${why} ${node.meta.noop ? 1 : 0} ${action} ${shell.exists ? 1 : 0} ${shell.inline ? 1 : 0} ${q(inSync)} ${notifiedIds.has(node.id) ? 1 : 0} ${checked} ${q(has)}`;
  };

  /** cairn_plain: the same turn as nodeCall's for a node of the main run that no notification touches. */
  const plainCall = (node: GraphNode) => {
    const shell = shells.get(node.id)!;
    const action = node.attributes.ensure === 'absent' ? 'destroy' : graph.types[node.type]?.createAction ?? 'create';
    const has = [...(shell.refresh ? ['r'] : []), ...(shell.diff ? ['d'] : [])].join(' ') || '-';
    return `cairn_plain ${ix(node.id)} ${ix(node.id)} ${action} ${shell.exists ? 1 : 0} ${q(has)}`;
  };

  /** What a meta type's fragments see of the rest of the run (ShellContext). */
  function contextFor(node: GraphNode): ShellContext {
    const asker = ix(node.id);
    return {
      os,
      related: (word) => {
        crossRefs = true;
        return (outgoing.get(node.id) ?? []).filter((e) => e.declared === word).map((e) => String(ix(e.to)));
      },
      wouldChange: (h) => {
        crossRefs = true;
        return `cairn_not n${h} c`;
      },
      willRun: (h) => {
        crossRefs = true;
        willRunFunction(Number(h), asker);
        return `w${h}_${asker}`;
      },
      refOf: (h) => q(mask(graph.nodes[Number(h) - 1]!.ref)),
      applyWith: (h, attributes) => {
        crossRefs = true;
        const other = graph.nodes[Number(h) - 1]!;
        const fn = `${h}_t${asker}`;
        const desired = { ...other.attributes, ...attributes };
        extra.push(functions(other, fn, desired));
        extra.push([
          `tw${fn}() {`,
          `  cairn_ref=${q(mask(other.ref))}`,
          `  ${nodeCall(other, fn, 'transition', desired, 0)}`,
          `  cairn_ref=${q(mask(node.ref))}`,
          `  case $${status(h)} in changed|would-change) return 0 ;; failed) return 2 ;; esac`,
          '  return 1',
          '}',
        ].join('\n'));
        return `tw${fn}`;
      },
    };
  }

  /** Handlers: cairn_flush calls their turns, so those are functions (t<i>); the rest are in cairn_main. */
  const flushed: ReadonlySet<string> = new Set(graph.handlers);
  const written = new Set<string>();
  /** EngineServices.willRun as a shell function: w<node>_<asker>, and the u… ones it needs. */
  function willRunFunction(h: number, asker: number): void {
    const name = `w${h}_${asker}`;
    if (written.has(name)) return;
    written.add(name);
    const node = graph.nodes[h - 1]!;
    const from = (kind: string) => (incoming.get(node.id) ?? []).filter((e) => e.kind === kind && ix(e.from) !== asker).map((e) => ix(e.from));
    const decided = (kind: string, met: (k: number) => string, word: string) => {
      const ks = from(kind);
      if (!ks.length) return [];
      return [`  if ${ks.map((k) => `[ -n "\${${status(k)}:-}" ]`).join(' && ')} && ! { ${ks.map(met).join(' || ')}; }; then return 1; fi  # ${word}`];
    };
    extra.push([
      `${name}() {`,
      ...(node.meta.noop ? ['  return 1'] : []),
      '  [ -z "$cairn_stopped" ] || return 1',
      `  ! u${h}_${asker} || return 1`,
      ...decided('onchanges', (k) => `cairn_chg "$${status(k)}"`, 'onchanges'),
      ...decided('onfail', (k) => `[ "$${status(k)}" = failed ]`, 'onfail'),
      '  return 0',
      '}',
    ].join('\n'));
    failsUpstreamFunction(h, asker);
  }
  function failsUpstreamFunction(h: number, asker: number): void {
    const name = `u${h}_${asker}`;
    if (written.has(name)) return;
    written.add(name);
    const node = graph.nodes[h - 1]!;
    const ks = (incoming.get(node.id) ?? []).filter((e) => BLOCKING.has(e.kind) && ix(e.from) !== asker).map((e) => ix(e.from));
    extra.push([
      `${name}() {`,
      ...ks.map((k) => `  if [ -n "\${${status(k)}:-}" ]; then [ "\${x_${k}:-}" != 1 ] || return 0; else ! u${k}_${asker} || return 0; fi`),
      '  return 1',
      '}',
    ].join('\n'));
    for (const k of ks) failsUpstreamFunction(k, asker);
  }

  // Invocations end (their handlers flush) after these nodes.
  const flushAfter = new Set<string>();
  {
    const left = new Map<number, number>();
    for (const id of graph.order) left.set(byId.get(id)!.invocation, (left.get(byId.get(id)!.invocation) ?? 0) + 1);
    for (const id of graph.order) {
      const n = byId.get(id)!.invocation;
      left.set(n, left.get(n)! - 1);
      if (left.get(n) === 0 && graph.handlers.length) flushAfter.add(id);
    }
  }
  const { staged: stagedWrites, commitAfter, before: beforeTurn } = stagedGroups();

  for (const node of graph.nodes) {
    const i = ix(node.id);
    const defs: string[] = [];
    nodeDefinitions.set(node.id, defs);
    defs.push(`# ${mask(node.ref).replace(/\n/g, ' ')}${node.pos ? ` (${node.pos.file}:${node.pos.line}:${node.pos.col})` : ''}`);
    defs.push(functions(node, String(i), node.attributes, stagedWrites.get(node.id)));
    const notifies = node.meta.noop ? [] : (outgoing.get(node.id) ?? []).filter((e) => e.kind === 'notify');
    if (notifies.length) {
      defs.push(`o${i}() {\n${notifies.map((e) => {
        const target = byId.get(e.to)!;
        return target.lazy ? `  cairn_notify_lazy ${ix(e.to)} ${target.defer ? 1 : 0} ${node.invocation} ${q(mask(node.ref))}` : `  cairn_notify ${ix(e.to)} ${q(mask(node.ref))}`;
      }).join('\n')}\n}`);
    }
    if (notifies.length) {
      // Written before the node changes anything, in apply mode (cairn_ahead).
      defs.push(`oa${i}() {\n  [ $cairn_mode = apply ] || return 0\n  cairn_ahead ${notifies.map((e) => `${pendingKey(e.to)} ${q(mask(node.ref))}`).join(' ')}\n}`);
    }
    out.push(...defs);
    if (flushed.has(node.id)) turns.push([`t${i}() {`, ...turnOf(node, '"${1:-}"'), '}'].join('\n'));
  }

  /**
   * A node's turn (engine.ts runNode's gate, then its check): one if/elif chain, so that it can be
   * written straight into cairn_main (no function to look up) or, for a handler that cairn_flush
   * calls, into the node's t<i> function. WHY is the turn's reason (`notified` from a flush).
   */
  function turnOf(node: GraphNode, why: string): string[] {
    const i = ix(node.id);
    const inc = incoming.get(node.id) ?? [];
    const requisites = inc.filter((x) => BLOCKING.has(x.kind)).map((e) => ix(e.from));
    const watched = inc.filter((x) => x.kind === 'onchanges').map((x) => ix(x.from));
    const guards = inc.filter((x) => x.kind === 'onfail').map((x) => ix(x.from));
    const staged = node.stage && node.stage.index < node.stage.of ? node.stage : undefined;
    const call = (checked: 0 | 1) => nodeCall(node, String(i), why, node.attributes, checked);
    const shell = shells.get(node.id)!;
    const checked = !(shell.inline || graph.types[node.type]?.inSync);
    // A check without return or exit is written in place: no function call at all.
    const check = checked ? stagedWrites.get(node.id)?.check ?? shell.check(node.attributes, contextFor(node)) : '';
    const inPlace = /\breturn\b|\bexit\b/.test(check) ? `cairn_n ${i} c` : `{\n${check.replace(/\n+$/, '')}\n}`;
    const head = `cairn_ref=${q(mask(node.ref))}`;
    const go = `cairn_go ${[i, ...requisites].join(' ')}`;
    if (!watched.length && !guards.length && !staged && !notifiedIds.has(node.id)) {
      // Most nodes: the gate, then the check, which a converged run stops at (cairn_ok).
      if (!checked) return [head, `if ${go}; then ${call(0)}; fi`];
      const notifies = (outgoing.get(node.id) ?? []).some((e) => e.kind === 'notify');
      const plain = why === "''" && !node.meta.noop && !notifies;
      const general = (test: string) => `if ${go}; then if ${test}; then cairn_ok ${i}; else ${plain ? plainCall(node) : call(1)}; fi; fi`;
      // The common case as one command (ShellProvider.turn), the general turn when it says no.
      const stagedWrite = stagedWrites.get(node.id);
      const fast = !plain ? undefined : stagedWrite ? stagedWrite.turn?.(i) : shell.turn?.(node.attributes, i);
      if (fast) {
        // The general turn needs the node's own function, loaded apart from the others'
        // (cairn_load_fast); its check is the function's, unless staged (the group's reading).
        fastNodes.add(node.id);
        const slow = stagedWrite?.check !== undefined ? `[ -n "$cairn_loaded_fast" ] || cairn_load_fast; ${general(inPlace)}` : `${plainCall(node).replace(/^cairn_plain \d+ \d+/, `cairn_gt ${i}`)} ${requisites.join(' ')}`;
        return [head, `if [ -n "$cairn_general$cairn_failed$cairn_stopped" ] || ! ${fast}; then ${slow}; fi`];
      }
      return [head, general(inPlace)];
    }
    const arms: Array<[condition: string, action: string]> = [[`! ${go}`, ':']];
    if (watched.length) arms.push([`! { ${watched.map((k) => `cairn_chg "\${${status(k)}:-}"`).join(' || ')}; }`, `cairn_result ${i} skipped none 'no changes'`]);
    if (guards.length) arms.push([`! { ${guards.map((k) => `[ "\${${status(k)}:-}" = failed ]`).join(' || ')}; }`, `cairn_result ${i} skipped none 'onfail: nothing failed'`]);
    if (staged) {
      crossRefs = true; // the end state's node function, whichever part it is loaded with
      arms.push([`cairn_n ${ix(staged.end)} c`, `cairn_result ${i} skipped none ${q(`end state in sync (stage ${staged.index} of ${staged.of})`)}`]);
    }
    let otherwise: string;
    if (!checked) otherwise = call(0);
    else if (notifiedIds.has(node.id)) {
      arms.push([`[ -z "\${p_${i}:-}" ] && { cairn_skip=; ${inPlace}; }`, `cairn_ok ${i}`], [`[ -z "\${p_${i}:-}" ]`, call(1)]);
      otherwise = call(0);
    } else {
      arms.push([`cairn_skip=; ${inPlace}`, `cairn_ok ${i}`]);
      otherwise = call(1);
    }
    return [
      head,
      ...arms.map(([condition, action], n) => `${n ? 'elif' : 'if'} ${condition}; then ${action}`),
      `else ${otherwise}`,
      'fi',
    ];
  }


  /**
   * Runs of consecutive nodes whose writes can wait for one commit (ShellProvider.stage): nothing
   * between them runs a command or reads what another wrote, so a file put in place at the
   * group's end is seen by no one earlier than it would be otherwise. A group ends before a node
   * that cannot be staged, one that needs a node of the group (its requisite's failure would come
   * only at the commit), one on a path a whole file of the group is written to (line edits of one
   * file share it), and at a handler flush. A file is staged only
   * when another of its group goes to the same folder (a stage costs a mkdir); a group with
   * nothing staged needs no commit.
   */
  function stagedGroups(): { staged: Map<string, StagedShell>; commitAfter: Map<string, boolean>; before: Map<string, string[]> } {
    const folderIds = new Map<string, number>();
    const fileIds = new Map<string, number>();
    const idOf = (ids: Map<string, number>, key: string) => {
      if (!ids.has(key)) ids.set(key, ids.size + 1);
      return ids.get(key)!;
    };
    const stageIds = { folder: (path: string) => idOf(folderIds, path), file: (path: string) => idOf(fileIds, path) };
    const staged = new Map<string, StagedShell>();
    /** Each group's first node, and the folders it stages files into. */
    const groups: Array<{ first: string; last: string; folders: string[] }> = [];
    let group: Array<{ id: string; staged: StagedShell }> = [];
    const close = () => {
      const perFolder = new Map<string, number>();
      for (const m of group) if (m.staged.folder !== undefined) perFolder.set(m.staged.folder, (perFolder.get(m.staged.folder) ?? 0) + 1);
      // A folder the group may make is made in its parent's stage when something of the group
      // goes in it (and must be when its parent is made so: nothing can be made in place inside a
      // folder still in a stage); a file goes to a stage when another file goes to the same
      // folder, or when its folder is made so.
      const inside = new Set(group.map((m) => dirname(m.staged.path)));
      const made = new Set(group.flatMap((m) => (m.staged.makes !== undefined && inside.has(m.staged.makes) ? [m.staged.makes] : [])));
      const kept = group.filter((m) => (m.staged.makes !== undefined ? made.has(m.staged.makes) || made.has(dirname(m.staged.makes))
        : m.staged.folder === undefined || perFolder.get(m.staged.folder)! > 1 || made.has(m.staged.folder)));
      for (const m of kept) staged.set(m.id, m.staged);
      if (kept.length) groups.push({ first: group[0]!.id, last: group[group.length - 1]!.id, folders: [...new Set(kept.flatMap((m) => (m.staged.folder === undefined ? [] : [m.staged.folder])))] });
      group = [];
    };
    const stageable = (node: GraphNode): StagedShell | undefined => {
      const shell = shells.get(node.id)!;
      if (!shell.stage || shell.inline || graph.types[node.type]?.inSync || node.meta.noop) return undefined;
      if (flushed.has(node.id) || notifiedIds.has(node.id) || (node.stage && node.stage.index < node.stage.of)) return undefined;
      if ((incoming.get(node.id) ?? []).some((e) => !BLOCKING.has(e.kind))) return undefined;
      if ((outgoing.get(node.id) ?? []).some((e) => e.kind === 'notify')) return undefined;
      return shell.stage(node.attributes, stageIds);
    };
    for (const id of graph.order) {
      const node = byId.get(id)!;
      const mine = stageable(node);
      const members = new Map(group.map((m) => [m.id, m.staged]));
      // Requiring the folder it is in, made by the group, is no reason to end it: if that folder
      // fails to be made the node fails with it, and the commit puts both in place or neither.
      const needsMember = (e: Edge) => members.has(e.from) && !(mine && members.get(e.from)!.makes === dirname(mine.path));
      const wholeWrite = (m: StagedShell) => m.folder !== undefined || m.entry === true;
      if (!mine || (incoming.get(id) ?? []).some(needsMember) || group.some((m) => m.staged.path === mine.path && (wholeWrite(m.staged) || wholeWrite(mine)))) close();
      if (mine) group.push({ id, staged: mine });
      if (flushAfter.has(id)) close();
    }
    close();

    // A commit keeps its empty stages for the next group when only nodes that touch their own
    // path come before the next commit (no handler flush); a group's stages are made with their
    // folders (cairn_mkdir) by such nodes just before it.
    const order = graph.order;
    const at = new Map(order.map((id, n) => [id, n]));
    const ownPath = (id: string) => shells.get(id)!.ownPath?.(byId.get(id)!.attributes) === true;
    const commitAfter = new Map<string, boolean>();
    const before = new Map<string, string[]>();
    for (const [g, { first, last, folders }] of groups.entries()) {
      const next = groups[g + 1];
      let keep = next !== undefined;
      for (let n = at.get(last)!; keep && n < at.get(next!.last)!; n++) {
        if (flushAfter.has(order[n]!) || (n > at.get(last)! && !ownPath(order[n]!))) keep = false;
      }
      commitAfter.set(last, keep);
      if (!folders.length) continue;
      let start = at.get(first)!;
      while (start > 0 && ownPath(order[start - 1]!) && !flushAfter.has(order[start - 1]!) && !(groups[g - 1]?.last === order[start - 1])) start--;
      if (start === at.get(first)) continue;
      pushTo(before, order[start]!, `cairn_prestage=${q(`\n${folders.join('\n')}\n`)}`);
      pushTo(before, first, 'cairn_prestage=');
    }
    return { staged, commitAfter, before };
  }

  // Notifications an earlier run left pending (a handler that failed or did not get its turn).
  const notified = [...new Set(graph.edges.filter((e) => e.kind === 'notify').map((e) => e.to))];
  const pending = notified.flatMap((id) => {
    const node = byId.get(id)!;
    const i = ix(id);
    const deliver = node.lazy ? `tr_${i}=${node.defer ? 'E' : 'F'}` : `p_${i}="$cairn_from (pending from an earlier run)"`;
    return [`pk_${i}=${pendingKey(id)}`, `if cairn_pending ${pendingKey(id)}; then ${deliver}; fi`];
  });

  const main: string[] = [];
  for (const id of graph.order) {
    const node = byId.get(id)!;
    main.push(...(beforeTurn.get(id) ?? []), ...(flushed.has(id) ? [`t${ix(id)}`] : turnOf(node, "''")));
    if (commitAfter.has(id)) main.push(commitAfter.get(id) ? 'cairn_commit 1' : 'cairn_commit');
    if (flushAfter.has(id)) main.push(`cairn_flush ${node.invocation}`);
  }
  if (graph.handlers.length) main.push('cairn_flush rest', 'cairn_flush end');

  const target = run.target.name;
  return [
    '#!/bin/sh',
    `# Converges target ${target.replace(/\n/g, ' ')}: written by \`cairn export --format sh\` (DESIGN §11).`,
    '# Options: --check (a dry run: what would change), --diff (show content changes), --fail-fast.',
    '# Exit 0 when no node failed, 1 when one did, 2 on a bad option. Needs a POSIX sh (dash, busybox ash).',
    PRELUDE.trim(),
    // The helpers the system types' fragments call (resources/shell-prelude.ts), only those used.
    preludeFor([...out, ...extra, ...turns, ...main]).trim(),
    'cairn_stop() { cairn_result "$1" skipped none "fail-fast: stopped after $cairn_stopped failed"; }',
    'cairn_chg() { [ "$1" = changed ] || { [ $cairn_mode = check ] && [ "$1" = would-change ]; }; }',
    `cairn_handlers=${q(graph.handlers.map(ix).join(' '))}`,
    `cairn_kept=${q(` ${[...statusRead].sort((a, b) => a - b).join(' ')} `)}`,
    `cairn_pending_dir=${q(`${run.target.state_dir}/export-pending`)}`,
    ...graph.handlers.filter((id) => byId.get(id)!.defer).map((id) => `df_${ix(id)}=1`),
    '',
    ...(crossRefs
      ? [lazyDefinitions([...out, ...extra].join('\n')), 'cairn_loaded_fast=1']
      : [
        lazyDefinitions(graph.nodes.filter((n) => !fastNodes.has(n.id)).flatMap((n) => nodeDefinitions.get(n.id)!).concat(extra).join('\n')),
        lazyDefinitions(graph.nodes.filter((n) => fastNodes.has(n.id)).flatMap((n) => nodeDefinitions.get(n.id)!).join('\n'), '_fast'),
      ]),
    ...turns,
    '',
    // One function, its input /dev/null: no fragment reads the script's stdin, which is the
    // script itself when it is fed to sh (\`curl … | sh\`); sh has read all of it by then.
    'cairn_main() {',
    '  :',
    ...pending.map((l) => `  ${l}`),
    ...main.map((l) => `  ${l}`),
    '}',
    'cairn_main </dev/null',
    `if [ $cairn_mode = check ]; then cairn_what="$cairn_n_changed to change"; else cairn_what="$cairn_n_changed changed"; fi`,
    `printf '%s: %s, %s unchanged, %s failed, %s skipped\\n' ${q(target)} "$cairn_what" "$cairn_n_unchanged" "$cairn_n_failed" "$cairn_n_skipped"`,
    '[ $cairn_n_failed -eq 0 ] || exit 1',
    'exit 0',
    '',
  ].join('\n');
}

/**
 * The nodes' functions, defined only when a node first needs more than its check (cairn_load):
 * a converged run never parses them. They are most of the script, and parsing them cost a no-op
 * more than its checks. Kept as a quoted here-document, which the shell reads without parsing.
 */
function lazyDefinitions(text: string, part: '' | '_fast' = ''): string {
  if (part && !text) return 'cairn_loaded_fast=1';
  const lines = new Set(text.split('\n'));
  let delimiter = 'CAIRN_DEFINITIONS';
  for (let n = 2; lines.has(delimiter); n++) delimiter = `CAIRN_DEFINITIONS_${n}`;
  return [
    `cairn_loaded${part}=`,
    `cairn_load${part}() {`,
    `  cairn_loaded${part}=1`,
    '  [ -n "$cairn_log" ] || cairn_mklog',
    `  eval "$(cat <<'${delimiter}'`,
    text,
    delimiter,
    ')"',
    '}',
    // The nodes with a fast turn (cairn_load_fast) are loaded apart: a first run whose other
    // nodes need their functions does not parse theirs. A fast node's general turn loads them.
    ...(part ? [] : [
      '# cairn_n I VERB: node I\'s function (n<I>), once the definitions are loaded.',
      'cairn_n() { [ -n "$cairn_loaded" ] || cairn_load; "n$@"; }',
    ]),
  ].join('\n');
}

/** The file name of a node's pending notification: stable across exports of the same site. */
function pendingKey(id: string): string {
  return sha256Hex(id).slice(0, 24);
}
