import { Code, ConnectError } from "@connectrpc/connect";
import { forEachLimited } from "./pool.ts";

/** How many sampled calls succeeded, and the error codes of the rest. */
export interface SampleCheck {
  readonly ok: number;
  readonly errors: ReadonlyMap<string, number>;
}

/**
 * h2load only sees HTTP statuses, and a gRPC error still arrives as HTTP 200
 * with grpc-status in the trailers: so after an h2load run, `count` calls are
 * made with a real client (10 at a time) and their status checked.
 */
export async function sampleCalls(count: number, call: (i: number) => Promise<unknown>): Promise<SampleCheck> {
  let ok = 0;
  const errors = new Map<string, number>();
  await forEachLimited(count, 10, async (i) => {
    try {
      await call(i);
      ok++;
    } catch (err) {
      const code = err instanceof ConnectError ? Code[err.code] : String(err);
      errors.set(code, (errors.get(code) ?? 0) + 1);
    }
  });
  return { ok, errors };
}

/** "100/100 ok" or "97/100 ok, unavailable ×3", for a row's notes. */
export function describeSample(check: SampleCheck, count: number): string {
  const errs = [...check.errors].map(([code, n]) => `${code} ×${n}`).join(", ");
  return `${check.ok}/${count} ok${errs === "" ? "" : `, ${errs}`}`;
}
