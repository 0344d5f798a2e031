// AuroraError: one error type for REST, socket acks, timeouts and a closed client.

const RETRYABLE = new Set(["internal", "unavailable", "rate_limited", "timeout"]);

export class AuroraError extends Error {
  constructor(code, message, { retryAfterMs = null, status = null, cause } = {}) {
    super(message || code, cause === undefined ? undefined : { cause });
    this.name = "AuroraError";
    this.code = code;
    this.retryAfterMs = retryAfterMs;
    this.status = status;
  }

  get retryable() {
    return RETRYABLE.has(this.code);
  }

  /** From an ack's or a REST body's `error` object ({code, message, retry_after_ms?}). */
  static fromWire(error, { status = null, retryAfterHeader = null } = {}) {
    const code = (error && error.code) || "internal";
    let retryAfterMs = null;
    if (error && Number.isFinite(error.retry_after_ms)) retryAfterMs = error.retry_after_ms;
    else if (retryAfterHeader != null && Number.isFinite(Number(retryAfterHeader))) {
      retryAfterMs = Number(retryAfterHeader) * 1000;
    }
    return new AuroraError(code, (error && error.message) || code, { retryAfterMs, status });
  }
}

/** Delay before retrying err (attempt counts from 1): the server's retry-after, else capped backoff with jitter. */
export function retryDelay(err, attempt, { baseMs = 250, maxMs = 5000 } = {}) {
  if (err && err.code === "rate_limited") return Math.max(err.retryAfterMs ?? 1000, 50);
  const exp = Math.min(maxMs, baseMs * 2 ** Math.min(attempt - 1, 10));
  return exp / 2 + Math.random() * (exp / 2);
}
