/**
 * Typed MLflow errors. The server answers `{"error_code": "...", "message": "..."}`; callers branch on
 * `errorCode` (e.g. `RESOURCE_ALREADY_EXISTS` comes back as HTTP 400, not 409), never on the HTTP status.
 */

export class MlflowError extends Error {
  override name = 'MlflowError';
  constructor(
    message: string,
    /** MLflow's `error_code`, or `HTTP_<status>` when the body was not an MLflow error. */
    readonly errorCode: string,
    readonly status: number,
    readonly endpoint: string,
  ) {
    super(message);
  }
}

/** The request never got an HTTP answer (refused, reset, DNS, timeout). */
export class MlflowNetworkError extends Error {
  override name = 'MlflowNetworkError';
  constructor(
    message: string,
    readonly endpoint: string,
    /**
     * True when the request may have reached the server (reset or timeout after sending): a write may have
     * been applied, so whoever resends it must reconcile. False for refused connections and DNS failures.
     */
    readonly maybeDelivered: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** HTTP statuses the Python client retries (`_TRANSIENT_FAILURE_RESPONSE_CODES`). */
export const TRANSIENT_STATUSES = new Set([408, 429, 500, 502, 503, 504]);

export function isTransient(error: unknown): boolean {
  if (error instanceof MlflowNetworkError) return true;
  return error instanceof MlflowError && TRANSIENT_STATUSES.has(error.status);
}

/** Errors that concern the whole server or run (auth, missing run): retrying the next batch will not help. */
export function isFatalForRun(error: unknown): boolean {
  return (
    error instanceof MlflowError &&
    (error.status === 401 ||
      error.status === 403 ||
      ['UNAUTHENTICATED', 'PERMISSION_DENIED', 'CUSTOMER_UNAUTHORIZED', 'RESOURCE_DOES_NOT_EXIST'].includes(error.errorCode))
  );
}
