/** Turning API answers into values or errors that say what went wrong. */

/** An API error: the problem+json `detail` of the answer, or why there was no answer. */
export class ApiError extends Error {
  readonly status: number;
  readonly requestId: string | null;

  constructor(message: string, status: number, requestId: string | null = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.requestId = requestId;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null;
}

/** The `detail` of an RFC 9457 problem document, or a plain description of the status. */
export function problemDetail(body: unknown, response: Response): string {
  if (isRecord(body) && typeof body.detail === "string" && body.detail !== "") {
    return body.detail;
  }
  if (typeof body === "string" && body.trim() !== "" && body.length < 300) {
    return body.trim();
  }
  const status = response.statusText || "error";
  return `the server answered ${response.status} ${status}`;
}

interface Answer<T> {
  data?: T;
  error?: unknown;
  response: Response;
}

/** Await an openapi-fetch call: its data, or an ApiError carrying the problem detail. */
export async function unwrap<T>(call: Promise<Answer<T>>): Promise<T> {
  let answer: Answer<T>;
  try {
    answer = await call;
  } catch (error) {
    if (error instanceof DOMException && error.name === "AbortError") {
      throw error;
    }
    throw new ApiError("cannot reach the EdgePlane API; check the connection and try again", 0);
  }
  const { data, error, response } = answer;
  if (!response.ok) {
    const requestId = isRecord(error) && typeof error.request_id === "string" ? error.request_id : null;
    throw new ApiError(problemDetail(error, response), response.status, requestId);
  }
  return data as T;
}

export function asApiError(error: unknown): ApiError {
  if (error instanceof ApiError) {
    return error;
  }
  const message = error instanceof Error ? error.message : String(error);
  return new ApiError(message, 0);
}
