import type { ReceivedMessage } from "../../lib/mqtt/consumer.js";
import type { Delivery } from "./dispatcher.js";

/** What a message on its way needs from the connector. */
export interface Routing {
  /** The broker connection now; bumped when one closes. */
  connection(): number;
  /** Dead-letters the message; it is acknowledged once the broker took the dead letter. */
  deadLetter(message: ReceivedMessage, reason: string): void;
}

/**
 * A message on its way to its functions: acknowledged when the last of them is done with it, or
 * dead-lettered then if one refused it (so that a message two functions take is not let go while
 * the other still works on it). One object per message and no closures: it is on the hot path.
 */
export class Routed implements Delivery {
  #remaining: number;
  #rejection: string | undefined;
  readonly #connection: number;

  constructor(
    readonly message: ReceivedMessage,
    targets: number,
    private readonly routing: Routing,
  ) {
    this.#remaining = targets;
    this.#connection = routing.connection();
  }

  get topic(): string {
    return this.message.topic;
  }

  get payload(): Buffer {
    return this.message.payload;
  }

  get current(): boolean {
    return this.routing.connection() === this.#connection;
  }

  done(): void {
    if (--this.#remaining > 0) return;
    if (this.#rejection === undefined) this.message.ack();
    else this.routing.deadLetter(this.message, this.#rejection);
  }

  reject(reason: string): void {
    this.#rejection ??= reason;
    this.done();
  }
}
