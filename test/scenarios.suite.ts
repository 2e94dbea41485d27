/** The two scenarios of the engine issue, end to end through the CLI with real processes. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { converge, lines, scratchSite } from './helpers/converge.ts';

const R = '<%= it.vars.root %>';

test('nginx-like site: config → reload → certificate → config with TLS → reload; converged re-run changes nothing', async () => {
  const s = scratchSite('nginx, { nginx-site: { domain: a.example } }, { tls-cert: { domain: a.example } }, { nginx-site: { domain: a.example, tls: true } }', {
    'states/web.yaml': [
      'nginx:',
      `  - directory: ${R}/conf.d`,
      `  - directory: ${R}/certs`,
      'nginx-site:',
      '  params: { domain: ~, tls: false }',
      '  parts:',
      `    - file: ${R}/conf.d/<%= it.params.domain %>.conf`,
      '      template: templates/site.conf.eta',
      '      notify: nginx-reload',
      'tls-cert:',
      '  params: { domain: ~ }',
      '  parts:',
      `    - exec: echo "cert for <%= it.params.domain %>" > ${R}/certs/<%= it.params.domain %>.pem`,
      `      creates: ${R}/certs/<%= it.params.domain %>.pem`,
      'nginx-reload:',
      '  lazy: true',
      '  parts:',
      `    - exec: cat ${R}/conf.d/*.conf >> ${R}/reloads.log`,
      '',
    ].join('\n'),
    'templates/site.conf.eta': [
      'server <%= it.params.domain %>',
      '<% if (it.params.tls) { %>',
      'ssl_certificate <%= it.vars.root %>/certs/<%= it.params.domain %>.pem',
      '<% } %>',
      '',
    ].join('\n'),
  });
  const first = await converge(s, 'apply', [], 0);
  const conf = `file:${s.root}/conf.d/a.example.conf`;
  const reload = `exec:cat ${s.root}/conf.d/*.conf >> ${s.root}/reloads.log`;
  assert.deepEqual(lines(first.nodes), [
    `changed directory:${s.root}/conf.d`,
    `changed directory:${s.root}/certs`,
    `changed ${conf}`,
    `changed ${reload} [notified by ${conf}]`,
    `changed exec:echo "cert for a.example" > ${s.root}/certs/a.example.pem`,
    `changed ${conf}`,
    `changed ${reload} [notified by ${conf}]`,
  ]);
  assert.equal(readFileSync(join(s.root, 'reloads.log'), 'utf8'),
    `server a.example\nserver a.example\nssl_certificate ${s.root}/certs/a.example.pem\n`);
  const second = await converge(s, 'apply', [], 0);
  assert.deepEqual(second.target.counts, { changed: 0, unchanged: 4, failed: 0, skipped: 1 });
  assert.equal(second.nodes[2]!.reason, 'end state in sync (stage 1 of 2)');
});

test('transition: the service is stopped while its config changes and started after; no stop when in sync', async () => {
  const svc = `${R}/svc.sh`;
  const s = scratchSite('svc', {
    'states/svc.yaml': [
      'svc:',
      `  - file: ${svc}`,
      '    mode: "0755"',
      '    content: |',
      '      #!/bin/sh',
      `      cd ${R}`,
      '      case "$1" in',
      '        start) echo "start $(cat svc.conf)" >> svc.log; echo $$ > svc.pid ;;',
      '        stop) echo "stop" >> svc.log; rm -f svc.pid ;;',
      '      esac',
      `  - file: ${R}/svc.conf`,
      '    content: "<%= it.vars.config %>"',
      `    require: file:${svc}`,
      `  - exec: ${svc} start`,
      '    id: running',
      `    unless: test -f ${R}/svc.pid`,
      `    require: file:${R}/svc.conf`,
      '  - transition: stop-for-config',
      '    resource: running',
      `    attributes: { argv: [${svc}, stop], unless: "test ! -f ${R}/svc.pid" }`,
      `    prior_to: file:${R}/svc.conf`,
      `    require: file:${svc}`,
      '',
    ].join('\n'),
  });
  const log = () => readFileSync(join(s.root, 'svc.log'), 'utf8');
  const first = await converge(s, 'apply', ['--var', 'config=v1'], 0);
  // Fresh host: the config is new, but the service is not running yet, so there is nothing to stop.
  assert.equal(first.nodes.find((n) => n.ref === 'transition:stop-for-config')!.reason, 'resource already in the transitional state');
  assert.equal(log(), 'start v1\n');

  const change = await converge(s, 'apply', ['--var', 'config=v2'], 0);
  assert.deepEqual(lines(change.nodes), [
    `unchanged file:${s.root}/svc.sh`,
    `changed exec:${s.root}/svc.sh start [transition]`,
    'changed transition:stop-for-config',
    `changed file:${s.root}/svc.conf`,
    `changed exec:${s.root}/svc.sh start`,
  ]);
  assert.equal(log(), 'start v1\nstop\nstart v2\n');

  const same = await converge(s, 'apply', ['--var', 'config=v2'], 0);
  assert.deepEqual(lines(same.nodes).slice(1, 2), ['skipped transition:stop-for-config [prior_to in sync]']);
  assert.deepEqual(same.target.counts, { changed: 0, unchanged: 3, failed: 0, skipped: 1 });
  assert.equal(log(), 'start v1\nstop\nstart v2\n');
});
