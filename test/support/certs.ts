import { execFileSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A throwaway CA, a server certificate for 127.0.0.1/localhost and a client certificate, made with openssl. */
export interface TestCerts {
  readonly dir: string;
  readonly caCert: string;
  readonly serverCert: string;
  readonly serverKey: string;
  readonly clientCert: string;
  readonly clientKey: string;
  /** Issues a fresh server certificate (for reload tests) into new files; returns their paths. */
  issueServer(name: string): { cert: string; key: string };
}

/** Makes the certificates in a new temp folder (EC P-256, valid one day). */
export function makeTestCerts(): TestCerts {
  const dir = mkdtempSync(join(tmpdir(), "ml-certs-"));
  const p = (f: string) => join(dir, f);
  const ssl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  ssl(
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-days",
    "1",
    "-subj",
    "/CN=test-ca",
    "-keyout",
    p("ca.key"),
    "-out",
    p("ca.crt"),
  );
  const issue = (name: string) => {
    ssl(
      "req",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-subj",
      `/CN=${name}`,
      "-keyout",
      p(`${name}.key`),
      "-out",
      p(`${name}.csr`),
    );
    ssl(
      "x509",
      "-req",
      "-in",
      p(`${name}.csr`),
      "-CA",
      p("ca.crt"),
      "-CAkey",
      p("ca.key"),
      "-CAcreateserial",
      "-days",
      "1",
      "-out",
      p(`${name}.crt`),
      "-extfile",
      p(`${name}.ext`),
    );
    return { cert: p(`${name}.crt`), key: p(`${name}.key`) };
  };
  const ext = (name: string, body: string) => execFileSync("sh", ["-c", `printf '%s\\n' "${body}" > ${p(`${name}.ext`)}`]);
  ext("server", "subjectAltName=IP:127.0.0.1,DNS:localhost");
  ext("client", "extendedKeyUsage=clientAuth");
  const server = issue("server");
  const client = issue("client");
  return {
    dir,
    caCert: p("ca.crt"),
    serverCert: server.cert,
    serverKey: server.key,
    clientCert: client.cert,
    clientKey: client.key,
    issueServer(name) {
      ext(name, "subjectAltName=IP:127.0.0.1,DNS:localhost");
      return issue(name);
    },
  };
}
