import type { Schemas } from "../api/client";
import { formatLabels, formatPercent } from "./format";

export type Rollout = Schemas["RolloutRead"];
export type RolloutState = Schemas["RolloutState"];

export const ROLLOUT_STATES: RolloutState[] = ["running", "paused", "succeeded", "rolled_back", "aborted"];

/** A state in words: "rolled back". */
export function stateText(state: RolloutState): string {
  return state.replace("_", " ");
}

export function isActive(state: RolloutState): boolean {
  return state === "running" || state === "paused";
}

/** Where a rollout is: "2/4 · 25%". */
export function stepText(rollout: Rollout): string {
  const step = rollout.steps[rollout.current_step];
  const percent = step === undefined ? "" : ` · ${formatPercent(step.percent)}`;
  return `${rollout.current_step + 1}/${rollout.steps.length}${percent}`;
}

/** The devices a rollout is for, in words. */
export function targetText(target: Schemas["RolloutTarget"], clusterNames: Map<string, string>): string {
  if (target.kind === "clusters") {
    const names = (target.cluster_ids ?? []).map((id) => clusterNames.get(id) ?? id.slice(0, 8));
    return `${names.length === 1 ? "cluster" : "clusters"} ${names.join(", ")}`;
  }
  if (target.kind === "selector") {
    return `devices labelled ${formatLabels(target.labels ?? {})}`;
  }
  return "the whole fleet";
}

/** Active rollouts first, newest first within each group. */
export function activeFirst(rollouts: Rollout[]): Rollout[] {
  return [...rollouts].sort(
    (a, b) => Number(isActive(b.state)) - Number(isActive(a.state)) || b.created_at.localeCompare(a.created_at),
  );
}
