/**
 * Values that merge instead of overwriting: collaborative text and counters.
 *
 * A plain string in a document is a scalar: when two people assign it at the
 * same time, one assignment wins. A `Text` is edited by `splice`, and
 * concurrent splices both apply, like two people typing in one note. A plain
 * number is a scalar too; a `Counter` is changed by `increment`, and
 * concurrent increments add up.
 *
 *   doc.change((d) => { d.note = new Text("hello"); d.likes = new Counter(); });
 *   doc.change((d) => { splice(d, "note", 5, 0, " world"); increment(d, "likes"); });
 *
 * In `doc.value` a text reads as a string and a counter as a number.
 */

/** A new collaborative text, to assign to a key or list index of a draft. */
export class Text {
  readonly value: string;
  constructor(value = "") {
    if (typeof value !== "string") throw new TypeError("new Text(value): value must be a string");
    this.value = value;
  }
}

/** A new counter, to assign to a key or list index of a draft. */
export class Counter {
  readonly value: number;
  constructor(value = 0) {
    if (!Number.isSafeInteger(value)) throw new TypeError("new Counter(value): value must be a whole number");
    this.value = value;
  }
}
