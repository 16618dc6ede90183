import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createLogger } from "../../lib/infra/log.js";
import type { ModelRegistry } from "../../lib/models/registry.js";
import { ModelsLink, type OpenedModels } from "../../page/models-link.js";
import { eventually } from "../support/eventually.js";

const log = createLogger("page", "silent");

describe("the page's link to the model registry", () => {
  it("closed while the registry is being opened, lets go of it before close() resolves", async () => {
    let finishOpening: (opened: OpenedModels) => void = () => {};
    let letGo = 0;
    const link = new ModelsLink(() => new Promise((resolve) => (finishOpening = resolve)), "plant-1", log);
    await link.start();
    const closing = link.close();
    // The connection is made after the close was asked for.
    // Letting go of a connection takes a turn of the event loop or more, as closing a socket does.
    const close = () => new Promise<void>((resolve) => setImmediate(() => resolve(void letGo++)));
    finishOpening({ registry: {} as ModelRegistry, close });
    await closing;
    assert.equal(letGo, 1);
    assert.equal(link.state, "waiting");
  });

  it("closed while waiting to try NATS again, tries no more", async () => {
    let attempts = 0;
    const link = new ModelsLink(
      () => {
        attempts++;
        return Promise.reject(new Error("connection refused"));
      },
      "plant-1",
      log,
    );
    await link.start();
    await eventually("the first attempt", () => attempts === 1);
    await link.close();
    await link.opened();
    assert.equal(attempts, 1);
  });
});
