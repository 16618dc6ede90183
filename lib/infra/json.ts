import { isUtf8 } from "node:buffer";
import sjson from "secure-json-parse";

/**
 * JSON from untrusted bytes (MQTT payloads, request bodies), refusing bytes that are not UTF-8
 * (a lossy decode would turn them into U+FFFD and let a mangled reading through) and
 * `__proto__` and `constructor.prototype` keys, as the template's body parser does. Throws on
 * anything else that is not JSON.
 */
export function parseUntrustedJson(payload: Buffer | string): unknown {
  if (typeof payload !== "string" && !isUtf8(payload)) throw new SyntaxError("not valid UTF-8 text");
  return sjson.parse(payload.toString("utf8"), undefined, { protoAction: "error", constructorAction: "error" });
}
