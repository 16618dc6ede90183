/**
 * Device IDs as NATS key-value keys. A key may hold only `A-Z a-z 0-9 _ - / = .` and must not
 * start or end with a dot, while a device ID is any string of 1 to 128 characters
 * (docs/architecture.md). Rejecting the rest would drop fans that predict accepts, so IDs are encoded:
 * letters, digits, `_` and `-` stay as they are (the usual IDs, "3" or "fan-17", read the same in
 * `nats kv ls`), every other byte of the ID's UTF-8 becomes `=XX` (two upper-case hex digits).
 * Since `=` itself is always escaped, every key decodes to exactly one ID: "a.b" is "a=2Eb", and
 * the ID "a=2Eb" is "a=3D2Eb". The longest key, 128 four-byte characters, is 1,536 characters,
 * well inside a subject (NATS limits the whole protocol line to 4 KiB by default).
 */
const PLAIN = /^[A-Za-z0-9_-]$/;
const PLAIN_ID = /^[A-Za-z0-9_-]+$/;
const KEY = /^(?:[A-Za-z0-9_-]|=[0-9A-F]{2})+$/;

export function encodeKey(deviceID: string): string {
  if (PLAIN_ID.test(deviceID)) return deviceID; // the usual case, on every prediction
  if (deviceID === "") throw new RangeError("a device ID is never empty");
  let key = "";
  for (const char of deviceID) {
    if (PLAIN.test(char)) key += char;
    else for (const byte of Buffer.from(char, "utf8")) key += `=${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return key;
}

/** The device ID of a key that encodeKey made; throws on any other key (not one of ours). */
export function decodeKey(key: string): string {
  if (PLAIN_ID.test(key)) return key;
  if (!KEY.test(key)) throw new RangeError(`"${key}" is not a fan key (letters, digits, _ and -, or =XX escapes)`);
  const bytes: number[] = [];
  for (let i = 0; i < key.length;) {
    if (key[i] === "=") {
      bytes.push(Number.parseInt(key.slice(i + 1, i + 3), 16));
      i += 3;
    } else {
      bytes.push(key.charCodeAt(i));
      i++;
    }
  }
  let id: string;
  try {
    id = new TextDecoder("utf-8", { fatal: true }).decode(Uint8Array.from(bytes));
  } catch (error) {
    throw new RangeError(`"${key}" does not decode to UTF-8 text`, { cause: error });
  }
  // A plain character spelled as an escape ("=41" for "A") would make two keys for one fan.
  if (encodeKey(id) !== key) throw new RangeError(`"${key}" is not the canonical key of "${id}"`);
  return id;
}
