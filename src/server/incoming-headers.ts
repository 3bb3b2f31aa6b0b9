import type { IncomingHttpHeaders } from "node:http2";

const base = Headers.prototype;

/**
 * The request headers of an HTTP/2 stream as a fetch `Headers` (what
 * connect-node hands interceptors and handlers: pseudo-headers dropped,
 * repeated fields joined as Headers joins them), filled from Node's header object only
 * when someone iterates or changes them. `get` and `has`, all a typical
 * interceptor does, read Node's object directly: building a Headers costs a
 * hot unary call more than the rest of the interceptor chain.
 */
export class IncomingHeaders extends Headers {
  #raw: IncomingHttpHeaders | undefined;

  constructor(raw: IncomingHttpHeaders) {
    super();
    this.#raw = raw;
  }

  static {
    // Headers' methods are prototype methods at runtime but typed as fields, so the overrides are installed here.
    function fill(h: IncomingHeaders): void {
      const raw = h.#raw;
      if (raw === undefined) return;
      h.#raw = undefined;
      for (const key of Object.keys(raw)) {
        if (key.charCodeAt(0) === 58 /* ":" */) continue;
        const value = raw[key];
        if (value === undefined) continue;
        if (Array.isArray(value)) for (const item of value) base.append.call(h, key, item);
        else base.append.call(h, key, String(value));
      }
    }
    function lookup(raw: IncomingHttpHeaders, name: string): string | string[] | undefined {
      const key = name.toLowerCase();
      return key.charCodeAt(0) === 58 || !Object.hasOwn(raw, key) ? undefined : raw[key];
    }
    const filling = (name: "append" | "set" | "delete" | "forEach" | "entries" | "keys" | "values" | "getSetCookie" | typeof Symbol.iterator) => ({
      value(this: IncomingHeaders, ...args: unknown[]) {
        fill(this);
        return (base[name] as (...a: unknown[]) => unknown).apply(this, args);
      },
      writable: true,
      configurable: true,
    });
    Object.defineProperties(IncomingHeaders.prototype, {
      get: {
        value(this: IncomingHeaders, name: string): string | null {
          const raw = this.#raw;
          if (raw === undefined) return base.get.call(this, name);
          const value = lookup(raw, name);
          if (value === undefined) return null;
          return Array.isArray(value) ? value.join(name.toLowerCase() === "cookie" ? "; " : ", ") : String(value);
        },
        writable: true,
        configurable: true,
      },
      has: {
        value(this: IncomingHeaders, name: string): boolean {
          const raw = this.#raw;
          return raw === undefined ? base.has.call(this, name) : lookup(raw, name) !== undefined;
        },
        writable: true,
        configurable: true,
      },
      append: filling("append"),
      set: filling("set"),
      delete: filling("delete"),
      forEach: filling("forEach"),
      entries: filling("entries"),
      keys: filling("keys"),
      values: filling("values"),
      getSetCookie: filling("getSetCookie"),
      [Symbol.iterator]: filling(Symbol.iterator),
    });
  }
}
