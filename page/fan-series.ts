/**
 * A fan's recent samples for its detail view, in a fixed ring of typed arrays: each sample is a
 * time and `width` numbers. Typed arrays rather than arrays of objects, because every fan keeps
 * one (up to 1,000 fans): 300 samples of 4 numbers take 8.4 KB, allocated once, whatever arrives.
 * Values are stored as 32-bit floats (readings have one decimal, probabilities six) and given
 * back rounded to six significant digits, so 612.3 reads 612.3 and not 612.29998779.
 */
export class SampleRing {
  readonly #at: Float64Array;
  readonly #values: Float32Array;
  #next = 0;
  #size = 0;

  constructor(
    readonly capacity: number,
    readonly width: number,
  ) {
    this.#at = new Float64Array(capacity);
    this.#values = new Float32Array(capacity * width);
  }

  get size(): number {
    return this.#size;
  }

  push(at: number, values: readonly number[]): void {
    this.#at[this.#next] = at;
    for (let i = 0; i < this.width; i++) this.#values[this.#next * this.width + i] = values[i] ?? Number.NaN;
    this.#next = (this.#next + 1) % this.capacity;
    this.#size = Math.min(this.#size + 1, this.capacity);
  }

  /** The samples oldest first, as columns: the times, then one array per value. */
  columns(): { at: number[]; values: number[][] } {
    const at: number[] = [];
    const values: number[][] = Array.from({ length: this.width }, () => []);
    const start = (this.#next - this.#size + this.capacity) % this.capacity;
    for (let n = 0; n < this.#size; n++) {
      const slot = (start + n) % this.capacity;
      at.push(this.#at[slot] ?? 0);
      for (let i = 0; i < this.width; i++)
        values[i]?.push(Number((this.#values[slot * this.width + i] ?? 0).toPrecision(6)));
    }
    return { at, values };
  }
}
