// Enrols N protocol-level agents for bench/master.mjs, each with its own key and certificate
// issued by the master's CA through the real enrolment (`POST /v1/enrol` with a one-time token),
// as `cairn agent enrol` does, several at once. Run with tsx (it uses Cairn's own modules):
//   node --import tsx bench/master-enrol.ts STORE_URL AGENT_URL CA_HASH COUNT OUT_DIR
// Writes OUT_DIR/agents.json: [{name, cert, key, ca}].
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createEnrolToken } from '../src/daemon/master/tokens.ts';
import { enrolAgent } from '../src/daemon/enrolment/client.ts';
import { openStore } from '../src/store/index.ts';

const [storeUrl, agentUrl, caHash, countText, outDir] = process.argv.slice(2);
if (!storeUrl || !agentUrl || !caHash || !countText || !outDir) throw new Error('usage: master-enrol.ts STORE_URL AGENT_URL CA_HASH COUNT OUT_DIR');
const count = Number(countText);
const store = await openStore(storeUrl);
const names = Array.from({ length: count }, (_, i) => `bench-${String(i).padStart(5, '0')}`);
const out: { name: string; cert: string; key: string; ca: string }[] = [];
let next = 0;
await Promise.all(Array.from({ length: 16 }, async () => {
  while (next < names.length) {
    const name = names[next++]!;
    const { token } = await createEnrolToken(store, { name, ttlSeconds: 3600, uses: 1, replace: false });
    const c = await enrolAgent({ master: agentUrl, token, caHash, name, dir: join(outDir, 'tls', name) });
    out.push({ name, cert: c.cert, key: c.key, ca: c.ca });
  }
}));
await store.close();
writeFileSync(join(outDir, 'agents.json'), JSON.stringify(out));
