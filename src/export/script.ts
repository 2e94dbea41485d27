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
import { ApplyError, type Provider, type ShellContext, type ShellProvider } from '../resources/type.ts';
import { preludeFor } from '../resources/shell-prelude.ts';
import { PRELUDE } from './prelude.ts';
import { pushTo } from '../lib/multimap.ts';

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
  const refOf = (id: string) => mask(byId.get(id)!.ref);
  const hidden = (node: GraphNode) => (node.meta.sensitive?.length ?? 0) > 0 || (graph.types[node.type]?.sensitive?.length ?? 0) > 0;
  const out: string[] = [];
  const extra: string[] = [];

  /** The c/a/e/r/d functions of a node (suffix `fn`) from its trait and desired attributes. */
  const functions = (node: GraphNode, fn: string, desired: Record<string, unknown>) => {
    const shell = shells.get(node.id)!;
    const ctx = contextFor(node);
    const action = desired.ensure === 'absent' ? 'destroy' : graph.types[node.type]?.createAction ?? 'create';
    const define = (name: string, body: string, subshellIfExit: boolean) => {
      const text = body.replace(/\n+$/, '') || ':';
      return subshellIfExit && /\bexit\b/.test(text) ? `${name}() (\n${text}\n)` : `${name}() {\n${text}\n}`;
    };
    const lines = [
      define(`c${fn}`, shell.check(desired, ctx), true),
      define(`a${fn}`, shell.apply(desired, action, ctx), !shell.inline),
    ];
    if (shell.exists) lines.push(define(`e${fn}`, shell.exists(desired, ctx), true));
    if (shell.refresh) lines.push(define(`r${fn}`, shell.refresh(desired, ctx), true));
    if (shell.diff) lines.push(define(`d${fn}`, hidden(node) ? "echo '(content hidden)'" : shell.diff(desired, ctx), true));
    return lines.join('\n');
  };

  /** The cairn_node call that runs a node's turn once its requisites let it. */
  const nodeCall = (node: GraphNode, fn: string, why: string, desired: Record<string, unknown>) => {
    const shell = shells.get(node.id)!;
    const action = desired.ensure === 'absent' ? 'destroy' : graph.types[node.type]?.createAction ?? 'create';
    const inSync = graph.types[node.type]?.inSync?.reason ?? '';
    return `cairn_node ${ix(node.id)} ${fn} ${why} ${node.meta.noop ? 1 : 0} ${action} ${shell.exists ? 1 : 0} ${shell.inline ? 1 : 0} ${q(inSync)} ${notifiedIds.has(node.id) ? 1 : 0}`;
  };

  /** What a meta type's fragments see of the rest of the run (ShellContext). */
  function contextFor(node: GraphNode): ShellContext {
    const asker = ix(node.id);
    return {
      os,
      related: (word) => (outgoing.get(node.id) ?? []).filter((e) => e.declared === word).map((e) => String(ix(e.to))),
      wouldChange: (h) => `cairn_not c${h}`,
      willRun: (h) => {
        willRunFunction(Number(h), asker);
        return `w${h}_${asker}`;
      },
      refOf: (h) => q(mask(graph.nodes[Number(h) - 1]!.ref)),
      applyWith: (h, attributes) => {
        const other = graph.nodes[Number(h) - 1]!;
        const fn = `${h}_t${asker}`;
        const desired = { ...other.attributes, ...attributes };
        extra.push(functions(other, fn, desired));
        extra.push([
          `tw${fn}() {`,
          `  cairn_ref=${q(mask(other.ref))}`,
          `  ${nodeCall(other, fn, 'transition', desired)}`,
          `  cairn_ref=${q(mask(node.ref))}`,
          `  case $s_${h} in changed|would-change) return 0 ;; failed) return 2 ;; esac`,
          '  return 1',
          '}',
        ].join('\n'));
        return `tw${fn}`;
      },
    };
  }

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
      return [`  if ${ks.map((k) => `[ -n "\${s_${k}:-}" ]`).join(' && ')} && ! { ${ks.map(met).join(' || ')}; }; then return 1; fi  # ${word}`];
    };
    extra.push([
      `${name}() {`,
      ...(node.meta.noop ? ['  return 1'] : []),
      '  [ -z "$cairn_stopped" ] || return 1',
      `  ! u${h}_${asker} || return 1`,
      ...decided('onchanges', (k) => `cairn_chg "$s_${k}"`, 'onchanges'),
      ...decided('onfail', (k) => `[ "$s_${k}" = failed ]`, 'onfail'),
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
      ...ks.map((k) => `  if [ -n "\${s_${k}:-}" ]; then [ "\${x_${k}:-}" != 1 ] || return 0; else ! u${k}_${asker} || return 0; fi`),
      '  return 1',
      '}',
    ].join('\n'));
    for (const k of ks) failsUpstreamFunction(k, asker);
  }

  for (const node of graph.nodes) {
    const i = ix(node.id);
    out.push(`# ${mask(node.ref).replace(/\n/g, ' ')}${node.pos ? ` (${node.pos.file}:${node.pos.line}:${node.pos.col})` : ''}`);
    out.push(functions(node, String(i), node.attributes));
    const notifies = node.meta.noop ? [] : (outgoing.get(node.id) ?? []).filter((e) => e.kind === 'notify');
    if (notifies.length) {
      out.push(`o${i}() {\n${notifies.map((e) => {
        const target = byId.get(e.to)!;
        return target.lazy ? `  cairn_notify_lazy ${ix(e.to)} ${target.defer ? 1 : 0} ${node.invocation} ${q(mask(node.ref))}` : `  cairn_notify ${ix(e.to)} ${q(mask(node.ref))}`;
      }).join('\n')}\n}`);
    }
    if (notifies.length) {
      // Written before the node changes anything, in apply mode (cairn_ahead).
      out.push(`oa${i}() {\n  [ $cairn_mode = apply ] || return 0\n  cairn_ahead ${notifies.map((e) => `${pendingKey(e.to)} ${q(mask(node.ref))}`).join(' ')}\n}`);
    }
    const inc = incoming.get(node.id) ?? [];
    const turn = [`t${i}() {`, `  cairn_ref=${q(mask(node.ref))}`,
      `  [ -z "$cairn_stopped" ] || { cairn_stop ${i}; return; }`];
    for (const e of inc.filter((x) => BLOCKING.has(x.kind))) {
      turn.push(`  if [ "\${x_${ix(e.from)}:-}" = 1 ]; then cairn_result ${i} skipped none ${q(`dependency failed: ${refOf(e.from)}`)}; return; fi`);
    }
    const watched = inc.filter((x) => x.kind === 'onchanges').map((x) => ix(x.from));
    if (watched.length) turn.push(`  if ! { ${watched.map((k) => `cairn_chg "\${s_${k}:-}"`).join(' || ')}; }; then cairn_result ${i} skipped none 'no changes'; return; fi`);
    const guards = inc.filter((x) => x.kind === 'onfail').map((x) => ix(x.from));
    if (guards.length) turn.push(`  if ! { ${guards.map((k) => `[ "\${s_${k}:-}" = failed ]`).join(' || ')}; }; then cairn_result ${i} skipped none 'onfail: nothing failed'; return; fi`);
    if (node.stage && node.stage.index < node.stage.of) {
      turn.push(`  if c${ix(node.stage.end)}; then cairn_result ${i} skipped none ${q(`end state in sync (stage ${node.stage.index} of ${node.stage.of})`)}; return; fi`);
    }
    const call = nodeCall(node, String(i), '"${1:-}"', node.attributes);
    if (shells.get(node.id)!.inline || graph.types[node.type]?.inSync) turn.push(`  ${call} 0`);
    else {
      // The common case without cairn_node: checked, in sync, reported (a converged run is mostly this).
      // A one-line check without return or exit is written in place: one function call less.
      const check = shells.get(node.id)!.check(node.attributes, contextFor(node));
      const inPlace = !/\n|\breturn\b|\bexit\b/.test(check) ? `{ ${check}; }` : `c${i}`;
      const fast = `cairn_skip=; if ${inPlace}; then s_${i}=unchanged; cairn_n_unchanged=$((cairn_n_unchanged + 1)); printf 'unchanged    %s\\n' "$cairn_ref"; return; fi; ${call} 1`;
      turn.push(notifiedIds.has(node.id) ? `  if [ -z "\${p_${i}:-}" ]; then ${fast}; return; fi\n  ${call} 0` : `  ${fast}`);
    }
    turn.push('}');
    out.push(turn.join('\n'));
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
  const remaining = new Map<number, number>();
  for (const id of graph.order) remaining.set(byId.get(id)!.invocation, (remaining.get(byId.get(id)!.invocation) ?? 0) + 1);
  for (const id of graph.order) {
    const node = byId.get(id)!;
    main.push(`t${ix(id)}`);
    const left = remaining.get(node.invocation)! - 1;
    remaining.set(node.invocation, left);
    if (left === 0 && graph.handlers.length) main.push(`cairn_flush ${node.invocation}`);
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
    preludeFor([...out, ...extra]).trim(),
    'cairn_stop() { cairn_result "$1" skipped none "fail-fast: stopped after $cairn_stopped failed"; }',
    'cairn_chg() { [ "$1" = changed ] || { [ $cairn_mode = check ] && [ "$1" = would-change ]; }; }',
    `cairn_handlers=${q(graph.handlers.map(ix).join(' '))}`,
    `cairn_pending_dir=${q(`${run.target.state_dir}/export-pending`)}`,
    ...graph.handlers.filter((id) => byId.get(id)!.defer).map((id) => `df_${ix(id)}=1`),
    '',
    ...out,
    ...extra,
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

/** The file name of a node's pending notification: stable across exports of the same site. */
function pendingKey(id: string): string {
  return sha256Hex(id).slice(0, 24);
}
