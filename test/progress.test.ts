/** The terminal progress block: one live line per target in progress, node lines scrolling above. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Progress } from '../src/cli/report.ts';
import type { NodeResult } from '../src/engine/engine.ts';

/** A terminal that applies the few escapes Progress uses (cursor up, erase below) to a screen. */
function screen() {
  const lines: string[] = [''];
  let row = 0;
  const out = {
    write(text: string) {
      // eslint-disable-next-line no-control-regex -- terminal escapes are the point here
      for (const m of text.matchAll(/\x1b\[(\d+)A|\r|\x1b\[J|\n|[^\x1b\r\n]+/g)) {
        if (m[1]) row -= Number(m[1]);
        else if (m[0] === '\r') lines[row] = lines[row] ?? '';
        else if (m[0] === '\x1b[J') lines.splice(row, lines.length - row, '');
        else if (m[0] === '\n') {
          row++;
          lines[row] ??= '';
        } else lines[row] = (lines[row] ?? '') + m[0];
      }
      return true;
    },
  };
  return { out: out as unknown as NodeJS.WriteStream, text: () => lines.filter((l, i) => l || i < lines.length - 1) };
}

const node = (status: NodeResult['status']): NodeResult => ({ ref: 'file:/x', id: 'file:/x', state: 's', invocation: 0, status, action: 'none', ms: 0 });

test('progress: a line per target in progress; printed lines go above; a finished target leaves the block', () => {
  const s = screen();
  const p = new Progress(s.out);
  p.start('web1', 3);
  p.start('web2', 2);
  assert.deepEqual(s.text(), ['web1: 0/3 nodes, 0 changed, 0 failed', 'web2: 0/2 nodes, 0 changed, 0 failed']);
  p.node('web1', node('changed'));
  p.node('web2', node('failed'));
  p.print('web2: FAILED file:/x');
  assert.deepEqual(s.text(), ['web2: FAILED file:/x', 'web1: 1/3 nodes, 1 changed, 0 failed', 'web2: 1/2 nodes, 0 changed, 1 failed']);
  p.finish('web2');
  p.print('web2: 0 changed, 1 failed');
  assert.deepEqual(s.text(), ['web2: FAILED file:/x', 'web2: 0 changed, 1 failed', 'web1: 1/3 nodes, 1 changed, 0 failed']);
  p.finish('web1');
  assert.deepEqual(s.text(), ['web2: FAILED file:/x', 'web2: 0 changed, 1 failed']);
});

test('progress: the live line names the node running and for how long; a line wider than the terminal is cut', () => {
  const s = screen();
  let now = 1000;
  const p = new Progress(s.out, () => now);
  p.start('web1', 3);
  p.running('web1', 'exec:make');
  now += 2500;
  p.node('web2', node('failed'));
  p.print('web1: changed file:/x');
  assert.deepEqual(s.text(), ['web1: changed file:/x', 'web1: 0/3 nodes, 0 changed, 0 failed — exec:make (2.5 s)']);
  (s.out as { columns?: number }).columns = 30;
  p.print('x');
  assert.equal(s.text().at(-1), 'web1: 0/3 nodes, 0 changed, …');
  p.finish('web1');
});

test("progress: a long operation's step and amount follow the running node, and go with it", () => {
  const s = screen();
  let now = 1000;
  const p = new Progress(s.out, () => now);
  p.start('host1', 2);
  p.running('host1', 'jail:web1');
  now += 1500;
  p.progress('host1', 'jail:web1', { done: 1, total: 4, step: 'adding its fstab entries' });
  assert.deepEqual(s.text(), ['host1: 0/2 nodes, 0 changed, 0 failed — jail:web1 (1.5 s): adding its fstab entries (1/4)']);
  // A late update of a node no longer running is not shown against the next one.
  p.running('host1', 'jail:web2');
  now += 200;
  p.progress('host1', 'jail:web1', { done: 2, total: 4 });
  p.print('x');
  assert.equal(s.text().at(-1), 'host1: 0/2 nodes, 0 changed, 0 failed — jail:web2 (0.2 s)');
  now += 200;
  p.progress('host1', 'jail:web2', { done: 300 });
  assert.equal(s.text().at(-1), 'host1: 0/2 nodes, 0 changed, 0 failed — jail:web2 (0.4 s): 300');
  p.finish('host1');
});
