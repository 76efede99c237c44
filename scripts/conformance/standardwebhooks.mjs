// Verifies webhooks sent by meshhook-alerts with the official Standard
// Webhooks JavaScript library (npm "standardwebhooks"), as a receiver
// written in Node.js would.
//
// Input (stdin): JSON {"secrets": ["whsec_…", …], "forged_secret": "whsec_…",
// "deliveries": [{"headers": {name: value}, "body": "<raw body>"}]}.
// Every delivery must verify with every secret (rotation: one signature per
// secret), and fail with the forged secret and with a tampered body.
// Prints "PASS …"/"FAIL …" lines and "N passed, M failed"; exits 1 on failure.
import { Webhook } from "standardwebhooks";

const input = JSON.parse(await new Promise((resolve, reject) => {
  let data = "";
  process.stdin.setEncoding("utf8");
  process.stdin.on("data", (c) => (data += c));
  process.stdin.on("end", () => resolve(data));
  process.stdin.on("error", reject);
}));

let passed = 0;
let failed = 0;
const check = (name, fn) => {
  try {
    fn();
    passed++;
    console.log(`PASS ${name}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e.message}`);
  }
};
const throws = (fn) => {
  try {
    fn();
  } catch {
    return;
  }
  throw new Error("verification succeeded but should have failed");
};

input.deliveries.forEach((d, i) => {
  for (const [j, secret] of input.secrets.entries()) {
    check(`delivery ${i} verifies with secret ${j}`, () => {
      const payload = new Webhook(secret).verify(d.body, d.headers);
      if (typeof payload !== "object" || payload === null) throw new Error("payload is not a JSON object");
    });
  }
  check(`delivery ${i} is refused with another secret`, () =>
    throws(() => new Webhook(input.forged_secret).verify(d.body, d.headers)));
  check(`delivery ${i} is refused when its body is altered`, () =>
    throws(() => new Webhook(input.secrets[0]).verify(d.body + " ", d.headers)));
});

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);
