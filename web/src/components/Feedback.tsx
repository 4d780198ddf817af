import type { ReactNode } from "react";

import type { ApiError } from "../api/errors";

export function ErrorBanner({ error, onRetry }: { error: ApiError; onRetry?: () => void }) {
  return (
    <div className="banner banner-error" role="alert">
      <div>
        <strong>{error.status === 0 ? "No answer" : `Error ${error.status}`}:</strong>{" "}
        {error.message}
        {error.requestId !== null && <div className="muted small">Request id {error.requestId}</div>}
      </div>
      {onRetry !== undefined && (
        <button type="button" className="button-secondary" onClick={onRetry}>
          Try again
        </button>
      )}
    </div>
  );
}

export function Loading({ what }: { what: string }) {
  return (
    <p className="loading" role="status">
      <span className="spinner" aria-hidden="true" /> Loading {what}…
    </p>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return <div className="empty">{children}</div>;
}

export function Notice({ children }: { children: ReactNode }) {
  return (
    <div className="banner banner-ok" role="status">
      <div>{children}</div>
    </div>
  );
}
