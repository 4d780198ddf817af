import type { Schemas } from "../api/client";

/** The model versions reported across the fleet, for filter suggestions. */
export function modelVersions(summary: Schemas["DeviceSummary"] | undefined): string[] {
  return (summary?.by_model_version ?? []).flatMap((model) =>
    model.model_version === null ? [] : [model.model_version],
  );
}
