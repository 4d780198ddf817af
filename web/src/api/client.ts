/**
 * The one HTTP client of the dashboard, typed by the generated `schema.d.ts`.
 *
 * Request and response types come only from the OpenAPI schema (regenerate with
 * `npm run generate:api` after `python -m server.openapi_export web/openapi.json`).
 */
import createClient, { type Middleware } from "openapi-fetch";

import type { components, paths } from "./schema";

export type Schemas = components["schemas"];
export type Role = Schemas["Role"];

export const api = createClient<paths>({ baseUrl: "" });

let bearer: string | null = null;
let onUnauthorized: (() => void) | null = null;

/** Called by the session: every request from now on carries this token. */
export function setBearer(token: string | null): void {
  bearer = token;
}

/** Called when the API answers 401 to a signed-in request (expired or revoked session). */
export function setUnauthorizedHandler(handler: (() => void) | null): void {
  onUnauthorized = handler;
}

const authentication: Middleware = {
  onRequest({ request }) {
    if (bearer !== null) {
      request.headers.set("Authorization", `Bearer ${bearer}`);
    }
    return request;
  },
  onResponse({ request, response }) {
    if (response.status === 401 && request.headers.has("Authorization")) {
      onUnauthorized?.();
    }
    return response;
  },
};

api.use(authentication);
