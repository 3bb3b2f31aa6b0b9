import { readFileSync, unwatchFile, watchFile } from "node:fs";
import type { SecureContextOptions } from "node:tls";

/** Where the server's certificate and key are, and (for mutual TLS) which CA signs its callers' certificates. */
export interface TlsSettings {
  readonly certFile: string;
  readonly keyFile: string;
  /** Set: callers must present a certificate signed by this CA (mutual TLS). */
  readonly clientCaFile?: string;
}

/** The secure-context options from the files as they are now. */
export function readTls(settings: TlsSettings): SecureContextOptions & { requestCert: boolean; rejectUnauthorized: boolean } {
  const mutual = settings.clientCaFile !== undefined;
  return {
    cert: readFileSync(settings.certFile),
    key: readFileSync(settings.keyFile),
    ...(mutual ? { ca: readFileSync(settings.clientCaFile!) } : {}),
    requestCert: mutual,
    rejectUnauthorized: mutual,
  };
}

/**
 * Reloads the certificate, key and client CA when any of the files changes
 * (a renewed certificate needs no restart). A half-written or mismatched
 * pair is refused by Node; the server then keeps the context it has and
 * `onError` hears why. Polling (every 2 s), because renewals often replace
 * files by rename, which fs.watch loses. Returns a function that stops it.
 */
export function watchTls(
  server: { setSecureContext(options: SecureContextOptions): void },
  settings: TlsSettings,
  onError: (err: unknown) => void,
  intervalMs = 2_000,
): () => void {
  const files = [settings.certFile, settings.keyFile, ...(settings.clientCaFile === undefined ? [] : [settings.clientCaFile])];
  const reload = () => {
    try {
      const { requestCert: _r, rejectUnauthorized: _u, ...context } = readTls(settings);
      server.setSecureContext(context);
    } catch (err) {
      onError(err);
    }
  };
  for (const f of files) watchFile(f, { interval: intervalMs, persistent: false }, reload);
  return () => {
    for (const f of files) unwatchFile(f, reload);
  };
}
