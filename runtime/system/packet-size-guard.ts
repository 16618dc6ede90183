import { Transform, type TransformCallback } from "node:stream";
import { PacketTooLargeError } from "../../lib/errors.js";

/**
 * Passes an MQTT byte stream through unchanged, reading only each packet's fixed header (a type
 * byte and a 1–4 byte length), and fails with PacketTooLargeError as soon as a header announces a
 * packet over `limit` bytes, before its body arrives. aedes's parser (mqtt-packet) has no size
 * limit: it would buffer up to the 256 MB the protocol allows before any hook could refuse it.
 */
export class PacketSizeGuard extends Transform {
  /** Body bytes of the current packet still to pass. */
  #body = 0;
  /** Fixed-header bytes of the next packet read so far. */
  #header: number[] = [];

  constructor(private readonly limit: number) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    let i = 0;
    let packetStart = 0;
    while (i < chunk.length) {
      if (this.#body > 0) {
        const n = Math.min(this.#body, chunk.length - i);
        this.#body -= n;
        i += n;
        continue;
      }
      if (this.#header.length === 0) packetStart = i;
      const byte = chunk[i++] as number;
      this.#header.push(byte);
      if (this.#header.length === 1 || (byte & 0x80) !== 0) {
        if (this.#header.length > 5)
          return done(new Error("malformed MQTT packet: its length takes more than 4 bytes"));
        continue;
      }
      let length = 0;
      for (let k = this.#header.length - 1; k >= 1; k--) length = length * 128 + ((this.#header[k] as number) & 0x7f);
      const size = this.#header.length + length;
      this.#header = [];
      if (size > this.limit) {
        // The packets before it are whole: they go on (a QoS 1 publish among them gets its ack).
        if (packetStart > 0) this.push(chunk.subarray(0, packetStart));
        return done(new PacketTooLargeError(size, this.limit));
      }
      this.#body = length;
    }
    done(null, chunk);
  }
}
