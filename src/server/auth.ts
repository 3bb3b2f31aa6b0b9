import { readFile, stat } from "node:fs/promises";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { createLocalJWKSet, createRemoteJWKSet, jwtVerify, type JSONWebKeySet, type JWTPayload, type JWTVerifyGetKey } from "jose";

/**
 * Who may call what. Internal services present a JWT bearer token, verified
 * with jose against a JWKS (a file, re-read when it changes, or a URL, cached
 * and refreshed by jose); issuer and audience are checked, clock skew is
 * bounded; its scopes decide which RPCs it may call. One interceptor, on
 * every path the server has.
 */

/** The scopes, and what each allows. */
export const SCOPES = {
  "ml.predict": ["Predict", "ForecastEnergy", "SuggestTasks", "Feedback"],
  "ml.ingest": ["IngestTrainingData", "UpsertTasks"],
  "ml.admin": ["Train", "ActivateModel", "ListModels", "ListActivations", "ListTrainingJobs"],
} as const;
/** A scope name. */
export type Scope = keyof typeof SCOPES;

/** The scope an ml.v1.MlService method needs: anything not listed (an RPC added later) needs ml.admin. */
export function scopeFor(method: string): Scope {
  for (const [scope, methods] of Object.entries(SCOPES) as [Scope, readonly string[]][]) if (methods.includes(method)) return scope;
  return "ml.admin";
}

/** How tokens are checked. */
export interface AuthSettings {
  /** A JWKS file (re-read when its mtime changes) or an https URL. */
  readonly jwks: { readonly file: string } | { readonly url: string };
  readonly issuer: string;
  readonly audience: string;
  readonly clockSkewSeconds: number;
  /** Whether gRPC reflection answers without a token (health always does). */
  readonly reflectionOpen: boolean;
}

/** What a verified token grants. */
interface Grant {
  readonly scopes: ReadonlySet<string>;
  /** Epoch ms after which the token is no longer honoured (its exp). */
  readonly until: number;
}

/** Tokens verified recently, so a caller that reuses its token pays the signature check once. */
const MAX_CACHED_TOKENS = 10_000;
/** A verified token is trusted this long at most before it is checked again (a key removed from the JWKS takes effect). */
const MAX_CACHE_MS = 5 * 60_000;

const OPEN_SERVICES = new Set(["grpc.health.v1.Health"]);
const REFLECTION_SERVICES = new Set(["grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"]);

function fileKeys(file: string): JWTVerifyGetKey {
  let loaded: { mtimeMs: number; keys: JWTVerifyGetKey } | null = null;
  let checkedAt = 0;
  return async (header, token) => {
    // At most one stat every 5 s: a rotated key file is picked up without a restart.
    if (loaded === null || Date.now() - checkedAt > 5_000) {
      checkedAt = Date.now();
      const { mtimeMs } = await stat(file);
      if (loaded === null || mtimeMs !== loaded.mtimeMs) {
        const jwks = JSON.parse(await readFile(file, "utf8")) as JSONWebKeySet;
        loaded = { mtimeMs, keys: createLocalJWKSet(jwks) };
      }
    }
    return loaded.keys(header, token);
  };
}

/** Checks bearer tokens: `cached` answers a token verified before without waiting (the hot path); `verify` checks one with jose. */
export interface TokenVerifier {
  /** The scopes of a token verified before and not yet expired, else undefined. */
  cached(token: string): ReadonlySet<string> | undefined;
  /** A token's scopes, or an UNAUTHENTICATED error. */
  verify(token: string): Promise<ReadonlySet<string>>;
}

/** Builds the verifier, with its cache of verified tokens. */
export function createTokenVerifier(settings: AuthSettings, clock: () => number = Date.now): TokenVerifier {
  const keys =
    "file" in settings.jwks ? fileKeys(settings.jwks.file) : createRemoteJWKSet(new URL(settings.jwks.url), { cacheMaxAge: 600_000, cooldownDuration: 30_000 });
  const cache = new Map<string, Grant>();
  function cached(token: string): ReadonlySet<string> | undefined {
    const hit = cache.get(token);
    return hit !== undefined && hit.until > clock() ? hit.scopes : undefined;
  }
  async function verify(token: string): Promise<ReadonlySet<string>> {
    const hit = cached(token);
    if (hit !== undefined) return hit;
    const now = clock();
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, keys, {
        issuer: settings.issuer,
        audience: settings.audience,
        clockTolerance: settings.clockSkewSeconds,
        currentDate: new Date(now),
        requiredClaims: ["exp"],
      }));
    } catch (err) {
      // jose's own codes say what was wrong with the token; anything else (the key file, the network) is ours to log, not the caller's to read.
      const code = (err as { code?: unknown }).code;
      const why = typeof code === "string" && code.startsWith("ERR_J") ? code : "ERR_JWT_INVALID";
      throw new ConnectError(`the bearer token was not accepted (${why})`, Code.Unauthenticated);
    }
    const raw = payload["scope"] ?? payload["scp"];
    const scopes = new Set(
      typeof raw === "string" ? raw.split(" ").filter(Boolean) : Array.isArray(raw) ? raw.filter((s): s is string => typeof s === "string") : [],
    );
    if (cache.size >= MAX_CACHED_TOKENS) cache.delete(cache.keys().next().value!);
    cache.set(token, { scopes, until: Math.min(((payload.exp ?? 0) + settings.clockSkewSeconds) * 1000, now + MAX_CACHE_MS) });
    return scopes;
  }
  return { cached, verify };
}

/** UNAUTHENTICATED without a valid bearer token, PERMISSION_DENIED without the method's scope; health stays open. */
export function createAuthInterceptor(settings: AuthSettings, clock: () => number = Date.now): Interceptor {
  const tokens = createTokenVerifier(settings, clock);
  return (next) => async (req) => {
    const service = req.service.typeName;
    if (OPEN_SERVICES.has(service) || (settings.reflectionOpen && REFLECTION_SERVICES.has(service))) return next(req);
    const header = req.header.get("authorization");
    const match = header === null ? null : /^Bearer\s+(\S+)$/i.exec(header);
    if (match === null) throw new ConnectError("this call needs an 'authorization: Bearer <token>' header", Code.Unauthenticated);
    // A token seen before is answered from the cache without a second await (one per call shows on the hot path).
    const scopes = tokens.cached(match[1]!) ?? (await tokens.verify(match[1]!));
    // Reflection (when not open) reveals only the schema: any valid token may read it.
    if (REFLECTION_SERVICES.has(service)) return next(req);
    const need = scopeFor(req.method.name);
    if (!scopes.has(need)) throw new ConnectError(`${req.method.name} needs the scope ${need}`, Code.PermissionDenied);
    return next(req);
  };
}
