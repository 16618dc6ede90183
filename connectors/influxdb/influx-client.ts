import { InfluxDB, setLogger } from "@influxdata/influxdb-client";
import type { InfluxTarget } from "./config.js";

/** Writes lines of line protocol (timestamps in milliseconds); rejects when InfluxDB did not take them. */
export interface LineWriter {
  write(lines: readonly string[]): Promise<void>;
}

const WRITE_TIMEOUT_MS = 10_000;

// The client library would print its own errors on the console; the writer logs them, once, as JSON.
setLogger({ error: () => {}, warn: () => {} });

export function createLineWriter(target: InfluxTarget): LineWriter {
  return target.api === "v1" ? new V1Writer(target) : new V2Writer(target);
}

/**
 * InfluxDB 1.x: POST /write?db=…&precision=ms, which 1.x servers of every version have (the 2.x
 * compatibility endpoint arrived only in 1.8; Debian ships 1.6).
 */
class V1Writer implements LineWriter {
  readonly #url: string;
  readonly #headers: Record<string, string>;

  constructor(target: Extract<InfluxTarget, { api: "v1" }>) {
    this.#url = `${target.url}/write?db=${encodeURIComponent(target.database)}&precision=ms`;
    this.#headers = { "content-type": "text/plain; charset=utf-8" };
    if (target.username !== undefined) this.#headers.authorization = `Basic ${Buffer.from(`${target.username}:${target.password ?? ""}`).toString("base64")}`;
  }

  async write(lines: readonly string[]): Promise<void> {
    const response = await fetch(this.#url, { method: "POST", headers: this.#headers, body: lines.join("\n"), signal: AbortSignal.timeout(WRITE_TIMEOUT_MS) });
    if (response.status !== 204) throw new Error(`InfluxDB answered ${response.status} to the write: ${(await response.text()).slice(0, 300)}`);
  }
}

/** InfluxDB 2.x and 3.x (/api/v2/write), through the official client; its own retries are off. */
class V2Writer implements LineWriter {
  readonly #client: InfluxDB;

  constructor(private readonly target: Extract<InfluxTarget, { api: "v2" }>) {
    this.#client = new InfluxDB({ url: target.url, token: target.token, timeout: WRITE_TIMEOUT_MS });
  }

  async write(lines: readonly string[]): Promise<void> {
    // One write API per batch: the writer decides when to retry, and acknowledges MQTT messages
    // only once this promise resolves, so the client must not buffer or retry on its own.
    const api = this.#client.getWriteApi(this.target.org, this.target.bucket, "ms", { maxRetries: 0, batchSize: lines.length + 1, flushInterval: 0, maxBufferLines: lines.length + 1 });
    api.writeRecords([...lines]);
    await api.close();
  }
}
