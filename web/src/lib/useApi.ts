import { useCallback, useEffect, useState } from "react";

import { asApiError, type ApiError } from "../api/errors";

export interface ApiState<T> {
  /** The latest answer; kept while a new one loads, so tables do not jump. */
  data: T | undefined;
  error: ApiError | undefined;
  loading: boolean;
  reload: () => void;
}

interface Settled<T> {
  key: string;
  baseKey: string;
  data: T | undefined;
  error: ApiError | undefined;
}

/**
 * Load data for a view. `key` names what is loaded (the request's parameters): a new
 * key starts a new request and cancels the previous one. With `keepPrevious`, the
 * answer for the previous key stays visible while the new one loads (paging, filters).
 */
export function useApi<T>(
  key: string,
  load: (signal: AbortSignal) => Promise<T>,
  { keepPrevious = false }: { keepPrevious?: boolean } = {},
): ApiState<T> {
  const [generation, setGeneration] = useState(0);
  const requestKey = `${key}#${generation}`;
  const [settled, setSettled] = useState<Settled<T>>({
    key: "",
    baseKey: "",
    data: undefined,
    error: undefined,
  });

  useEffect(() => {
    const controller = new AbortController();
    load(controller.signal).then(
      (data) => {
        if (!controller.signal.aborted) {
          setSettled({ key: requestKey, baseKey: key, data, error: undefined });
        }
      },
      (error: unknown) => {
        if (!controller.signal.aborted) {
          setSettled((previous) => ({
            key: requestKey,
            baseKey: key,
            data: previous.baseKey === key ? previous.data : undefined,
            error: asApiError(error),
          }));
        }
      },
    );
    return () => {
      controller.abort();
    };
    // `load` is a new function on every render; `requestKey` names what it loads.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [requestKey]);

  const reload = useCallback(() => {
    setGeneration((value) => value + 1);
  }, []);
  const current = settled.key === requestKey;
  return {
    data: keepPrevious || settled.baseKey === key ? settled.data : undefined,
    error: current ? settled.error : undefined,
    loading: !current,
    reload,
  };
}
