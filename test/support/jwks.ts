import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from "jose";

/** A signing key whose public half the service trusts through a JWKS file, for tests and benchmarks that call with real tokens. */
export interface TestIssuer {
  /** AUTH_JWKS_FILE, AUTH_ISSUER and AUTH_AUDIENCE for the service's environment. */
  readonly env: Record<string, string>;
  /** A bearer token carrying `scope` (space-separated), signed by the trusted key, or by `key` when given. */
  token(scope: string, options?: { key?: CryptoKey; issuer?: string; audience?: string; expires?: string }): Promise<string>;
  /** A key the service does not trust, to mint tokens it must refuse. */
  readonly untrustedKey: CryptoKey;
}

/** Makes an ES256 key pair, writes its public half as `jwks.json` in `dir` and mints tokens with the private half. */
export async function createTestIssuer(dir: string, options: { issuer?: string; audience?: string; kid?: string } = {}): Promise<TestIssuer> {
  const issuer = options.issuer ?? "test-issuer";
  const audience = options.audience ?? "ml-service";
  const kid = options.kid ?? "test";
  const pair = await generateKeyPair("ES256");
  const untrustedKey = (await generateKeyPair("ES256")).privateKey;
  const file = join(dir, "jwks.json");
  writeFileSync(file, JSON.stringify({ keys: [{ ...(await exportJWK(pair.publicKey)), kid, alg: "ES256" }] }));
  return {
    env: { AUTH_JWKS_FILE: file, AUTH_ISSUER: issuer, AUTH_AUDIENCE: audience },
    untrustedKey,
    token(scope, tokenOptions = {}) {
      return new SignJWT({ scope })
        .setProtectedHeader({ alg: "ES256", kid })
        .setIssuer(tokenOptions.issuer ?? issuer)
        .setAudience(tokenOptions.audience ?? audience)
        .setIssuedAt()
        .setExpirationTime(tokenOptions.expires ?? "10m")
        .sign(tokenOptions.key ?? pair.privateKey);
    },
  };
}
