#!/usr/bin/env node
// A TCP relay that holds every chunk DELAY ms in each direction: a link with a round-trip time
// of 2 × DELAY in front of a local server, for the SSH benchmark's slow-link rows (bench/ssh.mjs).
//   node bench/delay-relay.mjs LISTEN_PORT TARGET_PORT DELAY_MS
// Prints "ready" once it listens. Order is kept: chunks leave in the order they came, each after
// its own delay.
import net from 'node:net';

const [listen, target, delay] = process.argv.slice(2).map(Number);
if (![listen, target, delay].every(Number.isInteger)) throw new Error('usage: delay-relay.mjs LISTEN_PORT TARGET_PORT DELAY_MS');

const relay = (from, to) => {
  from.on('data', (chunk) => setTimeout(() => to.write(chunk), delay));
  from.on('end', () => setTimeout(() => to.end(), delay));
  from.on('error', () => to.destroy());
};

net.createServer((client) => {
  const server = net.connect(target, '127.0.0.1');
  relay(client, server);
  relay(server, client);
}).listen(listen, '127.0.0.1', () => process.stdout.write('ready\n'));
