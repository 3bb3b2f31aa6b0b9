/**
 * Mints a development token for a service started with
 *   AUTH_JWKS_FILE=.data/dev-auth/jwks.json AUTH_ISSUER=ml-dev AUTH_AUDIENCE=ml-service
 * Usage: npm run -s dev-token -- [scope ...] [--hours N]   (default: all three scopes, 12 hours)
 * The first run makes an ES256 key pair in .data/dev-auth/ (the private key never leaves it).
 * Production tokens come from your identity provider; this is for a laptop.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { exportJWK, generateKeyPair, importJWK, SignJWT, type JWK } from "jose";
import { SCOPES } from "../src/server/auth.ts";

const dir = join(process.cwd(), ".data", "dev-auth");
const args = process.argv.slice(2);
const hoursAt = args.indexOf("--hours");
const hours = hoursAt >= 0 ? Number(args[hoursAt + 1]) : 12;
const scopes = args.filter((a, i) => !a.startsWith("--") && (hoursAt < 0 || i !== hoursAt + 1));
for (const s of scopes) if (!(s in SCOPES)) throw new RangeError(`unknown scope ${s}; known: ${Object.keys(SCOPES).join(", ")}`);

const privatePath = join(dir, "private.jwk.json");
if (!existsSync(privatePath)) {
  mkdirSync(dir, { recursive: true });
  const { publicKey, privateKey } = await generateKeyPair("ES256", { extractable: true });
  const kid = `dev-${Date.now()}`;
  writeFileSync(privatePath, JSON.stringify({ ...(await exportJWK(privateKey)), kid, alg: "ES256" }), { mode: 0o600 });
  writeFileSync(join(dir, "jwks.json"), JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid, alg: "ES256", use: "sig" }] }, null, 2));
}
const jwk = JSON.parse(readFileSync(privatePath, "utf8")) as JWK & { kid: string };
const token = await new SignJWT({ scope: (scopes.length > 0 ? scopes : Object.keys(SCOPES)).join(" ") })
  .setProtectedHeader({ alg: "ES256", kid: jwk.kid })
  .setIssuer("ml-dev")
  .setAudience("ml-service")
  .setSubject("dev")
  .setIssuedAt()
  .setExpirationTime(`${hours}h`)
  .sign(await importJWK(jwk, "ES256"));
console.log(token);
