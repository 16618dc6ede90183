import { setTimeout as sleep } from "node:timers/promises";
import type { FunctionContext, FunctionEvent } from "../../templates/node22-ts/types.js";
import { readScoreConfig, type ScoreConfig } from "./config.js";
import { createLogger, type Logger } from "../../lib/infra/log.js";
import { DynamicBatcher } from "./batcher.js";
import type { Verdict } from "../../lib/domain/prediction.js";
import { ScoringModel } from "../../lib/inference/runtime.js";
import { parseScoreRequest } from "./score-request.js";
import { InputError } from "../../lib/errors.js";
import { ModelHolder } from "./model-holder.js";
import { registry, showServed } from "./metrics.js";
import { explain, score, scoreBatch } from "./scoring.js";
import { ModelFollower } from "./model-follower.js";
import { bundleArtifacts, bundleFromDirectory, bundleId, encodeBundle } from "../../lib/models/bundle.js";
import { redactUrl } from "../../lib/mqtt/settings.js";

/**
 * score: fault probability for fan readings. `{"params": [...]}` scores one reading (concurrent ones
 * are batched into one tensor call), `{"instances": [[...], ...]}` a batch in one call, and GET
 * describes the model. With `"explain": true` each prediction also says why: every sensor's
 * contribution against the model's healthy reference reading (docs/score.md). A batch also gets a
 * shadow model's answers when one is loaded (docs/models.md, "Shadow").
 */
interface Scorer {
  config: ScoreConfig;
  holder: ModelHolder;
  batcher: DynamicBatcher<number[], Verdict>;
  log: Logger;
  /** With NATS_URL: what makes this replica serve its site's active model and shadow. */
  follower: ModelFollower | undefined;
}

/**
 * How long init() waits for the site's active model before it serves the shipped one: where NATS
 * is there, loading and checking a version takes a few hundred ms, so a new replica starts on the
 * site's model; where it is not, the function is alive well within OpenFaaS's liveness budget.
 */
const INIT_REGISTRY_WAIT_MS = 2_000;

let scorer: Scorer | undefined;

/** Errors of the shared error contract answered as {"error","code","field"} with their status (docs/errors.md). */
export { errorAnswer } from "../../lib/errors.js";

export async function init(): Promise<void> {
  const config = readScoreConfig();
  const log = createLogger("score");
  const backend = config.backend === undefined ? {} : { backend: config.backend };
  // With the registry, the shipped model is served under its registry id (its bundle's digest), so
  // that a replica that has not reached NATS yet names the same model as those that have.
  const shipped =
    config.natsUrl === undefined ? undefined : await bundleFromDirectory(config.modelDir, { parent: null, ...backend });
  const model =
    shipped === undefined
      ? await ScoringModel.load(config.modelDir, backend)
      : await ScoringModel.fromArtifacts(
          bundleArtifacts(shipped, bundleId(encodeBundle(shipped))),
          config.modelDir,
          backend,
        );
  const holder = new ModelHolder(model);
  // Each batch takes the models once at its start: a swap lands between batches, never inside one.
  const batcher = new DynamicBatcher((rows: number[][]) => holder.use((lease) => score(lease.active, rows)), {
    maxBatchSize: config.maxBatchSize,
    maxWaitMs: config.maxWaitMs,
  });
  const follower =
    shipped === undefined || config.natsUrl === undefined
      ? undefined
      : new ModelFollower({
          url: config.natsUrl,
          site: config.site,
          replica: config.replica,
          shipped,
          holder,
          replicas: config.kvReplicas,
          log,
          ...backend,
        });
  scorer = { config, holder, batcher, log, follower };
  showServed(model.metadata.id, undefined);
  log.info(
    {
      event: "model_loaded",
      model: model.metadata.id,
      backend: model.backend,
      modelDir: config.modelDir,
      registry: config.natsUrl === undefined ? null : redactUrl(config.natsUrl),
      site: config.site,
      replica: config.replica,
      maxBatchSize: config.maxBatchSize,
      maxWaitMs: config.maxWaitMs,
    },
    `model ${model.metadata.id} loaded on the ${model.backend} backend`,
  );
  if (follower !== undefined) {
    await follower.start();
    await Promise.race([follower.synced, sleep(INIT_REGISTRY_WAIT_MS, undefined, { ref: false })]);
  }
}

export async function handler(event: FunctionEvent, context: FunctionContext): Promise<unknown> {
  const { holder, batcher, log } = ready();
  if (event.method === "GET") return describe(ready());
  if (event.method !== "POST") {
    context.headers({ allow: "GET, POST" });
    throw new InputError(
      `method ${event.method} is not allowed; POST readings or GET the model description`,
      "method",
      { status: 405, code: "FANWATCH_METHOD_NOT_ALLOWED" },
    );
  }
  const request = parseScoreRequest(event.body);
  // An explained reading is 16 model rows already, so a single one skips the batcher: waiting
  // for company would add latency to a call that is a batch by itself.
  if (request.kind === "single")
    return request.explain
      ? holder.use((lease) => explain(lease.active, [request.features])[0])
      : batcher.submit(request.features);
  if (request.explain)
    return holder.use((lease) => ({
      model: lease.active.metadata.id,
      predictions: explain(lease.active, request.instances),
    }));
  return holder.use((lease) => scoreBatch(lease, request.instances, log));
}

export async function close(): Promise<void> {
  const closing = scorer;
  scorer = undefined;
  await closing?.follower?.close();
  closing?.batcher.flush();
  closing?.holder.close();
}

export function metrics(): Promise<string> {
  return registry.metrics();
}

/** Both models, the active one's description at the top level as before shadows existed. */
function describe({ holder, config, follower }: Scorer): unknown {
  return holder.use(({ active, shadow }) => ({
    ...active.metadata,
    referenceProbability: active.referenceProbability,
    backend: active.backend,
    batching: { maxBatchSize: config.maxBatchSize, maxWaitMs: config.maxWaitMs },
    shadow: shadow === undefined ? null : { ...shadow.metadata, referenceProbability: shadow.referenceProbability },
    // What this replica follows, and the versions it would not serve; null without NATS_URL.
    registry: follower === undefined ? null : { site: config.site, replica: config.replica, ...follower.state },
  }));
}

function ready(): Scorer {
  if (scorer === undefined) throw new Error("the score function was not initialised: init() must run before handler()");
  return scorer;
}
