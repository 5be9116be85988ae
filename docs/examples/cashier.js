// A POS application's first steps through the agent's local socket, with
// Node's ioredis (npm install ioredis): log a cashier in, check a rate
// limit, read a price, bump a counter (docs/local-api.md).
//
//     node cashier.js [/run/posagent/agent.sock]
//
// Prints the same lines as cashier.c; exits 0 when the rate limit and the
// price could be asked.
'use strict';
const Redis = require('ioredis');

const path = process.argv[2] || '/run/posagent/agent.sock';
// No retries, no offline queue: the agent answers at once or the till knows.
const r = new Redis({ path, maxRetriesPerRequest: 0, enableOfflineQueue: true,
                      retryStrategy: () => null });

async function main() {
  let rc = 0;
  // A cashier logs in: the session lives 8 hours, also while offline.
  try {
    console.log(`login: ${await r.set('session:example-C-7', '{"cashierId":"C-7","name":"Ann"}',
                                      'EX', 28800)}`);
  } catch (e) {
    console.log(`login: refused: ${e.message}`);
  }
  // At most 5 logins of that cashier in 15 minutes, shared by every till.
  try {
    const [allowed, remaining, reset, source] = await r.call('RATELIMIT', 'login:C-7', 900000, 5);
    console.log(`ratelimit: allowed=${allowed} remaining=${remaining} reset=${reset} source=${source}`);
  } catch (e) {
    console.log(`ratelimit: error: ${e.message}`);
    rc = 1;
  }
  // A price: the local copy, fresh online, the last known one offline.
  try {
    const v = await r.get('product:P-1');
    console.log(`product: ${v === null ? '(none)' : v}`);
  } catch (e) {
    console.log(`product: error: ${e.message}`);
    rc = 1;
  }
  // A sale counted.
  try {
    console.log(`counter: ${await r.incrby('counter:example:sales', 1)}`);
  } catch (e) {
    console.log(`counter: error: ${e.message}`);
  }
  r.disconnect();
  return rc;
}

main().then((rc) => process.exit(rc), (e) => { console.error(e.message); process.exit(1); });
