// The NATS part's floors, each run as a Node process of its own as `fanwatch nats backup|restore` is:
//   node dist/bench/backup/floor.js read <nats url>
//     every stream of the server read whole through an ordered consumer (4 MiB batches, as the
//     backup asks), the messages counted and dropped: what reading the streams costs at least;
//   node dist/bench/backup/floor.js publish <nats url> <plan.json>
//     the plan's streams created and the same messages published with plain JetStream publish,
//     256 acknowledgements awaited at a time (as the restore does): what putting them back costs at least.
// Prints one JSON line: messages, bytes, seconds (the work alone, connection included).
import { readFile } from "node:fs/promises";
import { DeliverPolicy, jetstream, jetstreamManager, type PubAck, type StreamConfig } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { benchMessages } from "./messages.js";

/** What the bench hands the publish floor: the streams' configurations as the source has them, and the message counts. */
export interface Plan {
  events: number;
  keys: number;
  configs: StreamConfig[];
}

const IN_FLIGHT = 256;
const [mode, url, planPath] = process.argv.slice(2);
const started = performance.now();
const nc = await connect({ servers: url, name: `bench-backup-floor-${mode}` });
const js = jetstream(nc, { timeout: 10_000 });
const jsm = await jetstreamManager(nc, { timeout: 10_000 });
let messages = 0;
let bytes = 0;
if (mode === "read") {
  for await (const name of jsm.streams.names()) {
    const { state } = await jsm.streams.info(name);
    if (state.messages === 0) continue;
    const consumer = await js.consumers.get(name, { deliver_policy: DeliverPolicy.All });
    const feed = await consumer.consume({ max_bytes: 4 * 1024 ** 2 });
    for await (const msg of feed) {
      messages++;
      bytes += msg.data.length;
      if (msg.info.pending === 0 || msg.seq >= state.last_seq) break;
    }
    await feed.close();
  }
} else if (mode === "publish" && planPath !== undefined) {
  const plan = JSON.parse(await readFile(planPath, "utf8")) as Plan;
  for (const config of plan.configs) await jsm.streams.add(config);
  let pending: Array<Promise<PubAck>> = [];
  for (const m of benchMessages(plan.events, plan.keys)) {
    pending.push(js.publish(m.subject, m.data, m.msgID === undefined ? undefined : { msgID: m.msgID }));
    messages++;
    bytes += m.data.length;
    if (pending.length >= IN_FLIGHT) {
      await Promise.all(pending);
      pending = [];
    }
  }
  await Promise.all(pending);
} else {
  throw new Error("usage: floor.js read <nats url> | publish <nats url> <plan.json>");
}
await nc.close();
console.log(JSON.stringify({ messages, bytes, seconds: (performance.now() - started) / 1000 }));
