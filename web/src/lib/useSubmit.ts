import { useCallback, useState } from "react";

import { asApiError, type ApiError } from "../api/errors";

export interface Submission {
  /** True while the request is on its way; the submit button is disabled meanwhile. */
  pending: boolean;
  /** The server's answer when it refused (problem+json detail), or no answer at all. */
  error: ApiError | null;
  /** What the form itself found wrong before sending anything. */
  problem: string | null;
  /** Send: clears the previous error and problem, and keeps the refusal if there is one. */
  run: (send: () => Promise<unknown>) => Promise<void>;
  /** Refuse to send, saying why (the form's own check). */
  refuse: (problem: string) => void;
  /** Forget the error and problem (the form was closed or reset). */
  clear: () => void;
}

/** The state every form that changes something has: pending, the server's refusal, and
 * the form's own problem. */
export function useSubmit(): Submission {
  const [pending, setPending] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const [problem, setProblem] = useState<string | null>(null);

  const run = useCallback(async (send: () => Promise<unknown>) => {
    setProblem(null);
    setError(null);
    setPending(true);
    try {
      await send();
    } catch (caught) {
      setError(asApiError(caught));
    } finally {
      setPending(false);
    }
  }, []);
  const refuse = useCallback((reason: string) => {
    setProblem(reason);
  }, []);
  const clear = useCallback(() => {
    setProblem(null);
    setError(null);
  }, []);

  return { pending, error, problem, run, refuse, clear };
}
