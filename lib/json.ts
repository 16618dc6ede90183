import sjson from "secure-json-parse";

/**
 * JSON from untrusted bytes (MQTT payloads), refusing `__proto__` and `constructor.prototype` keys
 * as the template's body parser does. Throws on anything else that is not JSON.
 */
export function parseUntrustedJson(payload: Buffer | string): unknown {
  return sjson.parse(payload.toString("utf8"), undefined, { protoAction: "error", constructorAction: "error" });
}
