const base = Headers.prototype;

// What Headers would store unchanged: a lowercase token name, a value without
// surrounding whitespace, CR, LF or NUL. Anything else goes through Headers
// itself, which normalises it or throws as fetch specifies.
const PLAIN_NAME = /^[!#$%&'*+.^_`|~0-9a-z-]+$/;
const PLAIN_VALUE = /^(?:[^\0\r\n\t ](?:[^\0\r\n]*[^\0\r\n\t ])?)?$/;

/**
 * The response headers or trailers of a call on the lean unary path, as the
 * fetch `Headers` interceptors expect: `get`, `has`, `set` and `delete` work
 * on a plain record, which the fast path writes to the HTTP/2 stream as it is.
 * Undici's Headers lowercases, validates and sorts on every call, and made a
 * third of the allocations the interceptor chain added to a Predict; this
 * class moves the fields into a real Headers only when someone appends,
 * iterates or sets something that needs normalising (see IncomingHeaders for
 * the request side).
 */
export class OutgoingHeaders extends Headers {
  #fields: Record<string, string> | undefined;

  constructor(fields: Record<string, string>) {
    super();
    this.#fields = fields;
  }

  /** The fields to send, or undefined once they moved into Headers (then read them with forEach). */
  static plainFields(h: OutgoingHeaders): Readonly<Record<string, string>> | undefined {
    return h.#fields;
  }

  static {
    function materialize(h: OutgoingHeaders): void {
      const fields = h.#fields;
      if (fields === undefined) return;
      h.#fields = undefined;
      for (const key of Object.keys(fields)) base.set.call(h, key, fields[key]!);
    }
    const materializing = (name: "append" | "forEach" | "entries" | "keys" | "values" | "getSetCookie" | typeof Symbol.iterator) => ({
      value(this: OutgoingHeaders, ...args: unknown[]) {
        materialize(this);
        return (base[name] as (...a: unknown[]) => unknown).apply(this, args);
      },
      writable: true,
      configurable: true,
    });
    const method = (value: (this: OutgoingHeaders, ...args: never[]) => unknown) => ({ value, writable: true, configurable: true });
    Object.defineProperties(OutgoingHeaders.prototype, {
      get: method(function (this: OutgoingHeaders, name: string): string | null {
        const fields = this.#fields;
        const key = name.toLowerCase();
        if (fields === undefined || !PLAIN_NAME.test(key)) {
          materialize(this);
          return base.get.call(this, name);
        }
        return Object.hasOwn(fields, key) ? fields[key]! : null;
      }),
      has: method(function (this: OutgoingHeaders, name: string): boolean {
        const fields = this.#fields;
        const key = name.toLowerCase();
        if (fields === undefined || !PLAIN_NAME.test(key)) {
          materialize(this);
          return base.has.call(this, name);
        }
        return Object.hasOwn(fields, key);
      }),
      set: method(function (this: OutgoingHeaders, name: string, value: string): void {
        const fields = this.#fields;
        const key = name.toLowerCase();
        if (fields !== undefined && PLAIN_NAME.test(key) && PLAIN_VALUE.test(value)) {
          fields[key] = value;
          return;
        }
        materialize(this);
        base.set.call(this, name, value);
      }),
      delete: method(function (this: OutgoingHeaders, name: string): void {
        const fields = this.#fields;
        const key = name.toLowerCase();
        if (fields === undefined || !PLAIN_NAME.test(key)) {
          materialize(this);
          base.delete.call(this, name);
        } else delete fields[key];
      }),
      append: materializing("append"),
      forEach: materializing("forEach"),
      entries: materializing("entries"),
      keys: materializing("keys"),
      values: materializing("values"),
      getSetCookie: materializing("getSetCookie"),
      [Symbol.iterator]: materializing(Symbol.iterator),
    });
  }
}
