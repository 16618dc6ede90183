import { connect } from "@nats-io/transport-node";
import { createLogger } from "../../lib/infra/log.js";
import { AlertmanagerTarget } from "../../notifier/alertmanager/target.js";

// Run as a child process by test/system/alertmanager.test.ts: an Alertmanager target closed while
// it starts (its state bucket still loading) must leave nothing running, so that this process,
// having closed its NATS connection, exits by itself. Arguments: the NATS URL, the bucket, an
// Alertmanager URL.
const [natsUrl, bucket, alertmanagerUrl] = process.argv.slice(2);
if (natsUrl === undefined || bucket === undefined || alertmanagerUrl === undefined)
  throw new Error("usage: alertmanager-closed-while-starting <nats url> <bucket> <alertmanager url>");
const nc = await connect({ servers: natsUrl });
const target = new AlertmanagerTarget({
  urls: [alertmanagerUrl],
  site: "plant-c",
  bucket,
  resendMs: 300,
  timeoutMs: 2_000,
  nc,
  log: createLogger("closed-while-starting", "silent"),
});
const starting = target.start();
await target.close();
await starting;
await nc.close();
process.stdout.write("closed\n");
