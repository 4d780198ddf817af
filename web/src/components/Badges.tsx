import type { Schemas } from "../api/client";
import { stateText } from "../lib/rollouts";

type Status = Schemas["DeviceStatus"] | Schemas["ClusterStatus"];

export function StatusBadge({ status }: { status: Status }) {
  return <span className={`badge badge-${status}`}>{status}</span>;
}

export function LabelChips({ labels }: { labels: Record<string, string> }) {
  const entries = Object.entries(labels);
  if (entries.length === 0) {
    return <span className="muted">none</span>;
  }
  return (
    <span className="chips">
      {entries.map(([key, value]) => (
        <span key={key} className="chip">
          {key}={value}
        </span>
      ))}
    </span>
  );
}

export function RolloutStateBadge({ state }: { state: Schemas["RolloutState"] }) {
  return <span className={`badge badge-${state}`}>{stateText(state)}</span>;
}

export function VerdictBadge({ verdict }: { verdict: Schemas["AnalysisRead"]["verdict"] }) {
  return <span className={`badge badge-${verdict}`}>{verdict}</span>;
}
