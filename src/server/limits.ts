/**
 * Limits that connect-node and the lean unary path both apply, from one
 * config value each, so a call meets the same rules on either path.
 */
export interface ServerLimits {
  /** Largest request message, in bytes (connect's readMaxBytes). */
  readonly readMaxBytes: number;
  /** Largest response message, in bytes (connect's writeMaxBytes). */
  readonly writeMaxBytes: number;
  /** Longest deadline a caller may ask for, in ms (connect's maxTimeoutMs). */
  readonly maxTimeoutMs: number;
}
