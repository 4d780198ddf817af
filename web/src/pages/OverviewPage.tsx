import { Link } from "react-router";

import { api, type Schemas } from "../api/client";
import { unwrap } from "../api/errors";
import { RolloutStateBadge } from "../components/Badges";
import { Empty, ErrorBanner, Loading } from "../components/Feedback";
import { LineChart } from "../components/LineChart";
import { Time } from "../components/Time";
import { formatCount } from "../lib/format";
import { activeFirst, stepText, type Rollout } from "../lib/rollouts";
import { useApi } from "../lib/useApi";
import { usePageTitle } from "../lib/usePageTitle";

const RECENT_EVENTS = 10;
const RATE_MINUTES = 60;

function StatusCards({ summary }: { summary: Schemas["DeviceSummary"] }) {
  const cards = [
    { label: "Devices", value: summary.total, to: "/devices", tone: "" },
    { label: "Online", value: summary.by_status.online, to: "/devices?status=online", tone: "online" },
    { label: "Offline", value: summary.by_status.offline, to: "/devices?status=offline", tone: "offline" },
    { label: "Revoked", value: summary.by_status.revoked, to: "/devices?status=revoked", tone: "revoked" },
  ];
  return (
    <div className="stat-grid">
      {cards.map((card) => (
        <Link key={card.label} to={card.to} className={`card stat stat-${card.tone || "total"}`}>
          <span className="stat-label">{card.label}</span>
          <span className="stat-value" data-testid={`stat-${card.label.toLowerCase()}`}>
            {formatCount(card.value)}
          </span>
        </Link>
      ))}
    </div>
  );
}

function ModelsInUse({ models }: { models: Schemas["ModelVersionCount"][] }) {
  if (models.length === 0) {
    return <Empty>No device has enrolled yet, so no model is in use.</Empty>;
  }
  const total = models.reduce((sum, model) => sum + model.devices, 0);
  return (
    <div className="table-wrap">
      <table className="table" aria-label="Models in use">
        <thead>
          <tr>
            <th>Model version</th>
            <th className="num">Devices</th>
            <th className="num">Online</th>
            <th className="share-col">Share of fleet</th>
          </tr>
        </thead>
        <tbody>
          {models.map((model) => {
            const share = total === 0 ? 0 : (model.devices / total) * 100;
            return (
              <tr key={model.model_version ?? "none"}>
                <td>
                  {model.model_version === null ? (
                    <span className="muted">none reported</span>
                  ) : (
                    <Link to={`/devices?model_version=${encodeURIComponent(model.model_version)}`}>
                      {model.model_version}
                    </Link>
                  )}
                </td>
                <td className="num">{formatCount(model.devices)}</td>
                <td className="num">{formatCount(model.online)}</td>
                <td className="share-col">
                  <span className="bar" aria-label={`${share.toFixed(1)}%`}>
                    <span className="bar-fill" style={{ width: `${share}%` }} />
                  </span>
                  <span className="small muted">{share.toFixed(1)}%</span>
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

function AnomalyRate({ rate }: { rate: Schemas["AnomalyRate"] }) {
  return (
    <div className="card">
      <LineChart
        title={`Anomalies per minute, last ${rate.minutes} minutes (${formatCount(rate.total)} in all)`}
        unit="per minute"
        series={[
          { name: "anomalies", points: rate.points.map((point) => ({ at: point.minute, value: point.count })) },
        ]}
        empty="No minutes to show."
      />
    </div>
  );
}

function ActiveRollouts({ rollouts }: { rollouts: Rollout[] }) {
  if (rollouts.length === 0) {
    return (
      <Empty>
        No rollout is running. <Link to="/rollouts">Rollouts</Link> lists the finished ones.
      </Empty>
    );
  }
  return (
    <div className="table-wrap">
      <table className="table" aria-label="Active rollouts">
        <thead>
          <tr>
            <th>Model</th>
            <th>State</th>
            <th>Step</th>
            <th className="num">Cohort</th>
            <th>Last verdict</th>
          </tr>
        </thead>
        <tbody>
          {rollouts.map((rollout) => (
            <tr key={rollout.id}>
              <td>
                <Link to={`/rollouts/${rollout.id}`}>{rollout.model_label}</Link>
              </td>
              <td>
                <RolloutStateBadge state={rollout.state} />
              </td>
              <td className="nowrap">{stepText(rollout)}</td>
              <td className="num">
                {formatCount(rollout.cohort_size)} / {formatCount(rollout.target_size)}
              </td>
              <td className="truncate">
                {rollout.last_analysis === null ? (
                  <span className="muted">not analysed yet</span>
                ) : (
                  `${rollout.last_analysis.verdict}: ${rollout.last_analysis.reason}`
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function RecentEvents({ events }: { events: Schemas["AuditEventRead"][] }) {
  if (events.length === 0) {
    return <Empty>Nothing has been changed yet.</Empty>;
  }
  return (
    <div className="table-wrap">
      <table className="table" aria-label="Recent audit events">
        <thead>
          <tr>
            <th>When</th>
            <th>Who</th>
            <th>Action</th>
            <th>Target</th>
          </tr>
        </thead>
        <tbody>
          {events.map((event) => (
            <tr key={event.id}>
              <td className="nowrap">
                <Time value={event.at} />
              </td>
              <td>{event.actor_name}</td>
              <td>
                <code>{event.action}</code>
              </td>
              <td className="truncate">
                {event.target_type === "device" && event.target_id !== null ? (
                  <Link to={`/devices/${event.target_id}`}>device {event.target_id.slice(0, 8)}</Link>
                ) : event.target_type === "rollout" && event.target_id !== null ? (
                  <Link to={`/rollouts/${event.target_id}`}>rollout {event.target_id.slice(0, 8)}</Link>
                ) : (
                  <>
                    {event.target_type}
                    {event.target_id !== null && <span className="muted"> {event.target_id.slice(0, 8)}</span>}
                  </>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export default function OverviewPage() {
  usePageTitle("Overview");
  const summary = useApi("summary", (signal) => unwrap(api.GET("/api/v1/devices/summary", { signal })));
  const events = useApi("recent-events", (signal) =>
    unwrap(api.GET("/api/v1/audit-events", { params: { query: { limit: RECENT_EVENTS } }, signal })),
  );
  const rate = useApi("anomaly-rate", (signal) =>
    unwrap(api.GET("/api/v1/anomalies/rate", { params: { query: { minutes: RATE_MINUTES } }, signal })),
  );
  const rollouts = useApi("active-rollouts", async (signal) => {
    const pages = await Promise.all(
      (["running", "paused"] as const).map((state) =>
        unwrap(api.GET("/api/v1/rollouts", { params: { query: { state, limit: 100 } }, signal })),
      ),
    );
    return activeFirst(pages.flatMap((page) => page.items));
  });

  return (
    <section>
      <div className="page-head">
        <h1>Overview</h1>
        <button
          type="button"
          className="button-secondary"
          onClick={() => {
            summary.reload();
            events.reload();
            rate.reload();
            rollouts.reload();
          }}
        >
          Refresh
        </button>
      </div>

      <h2>Fleet</h2>
      {summary.error !== undefined && <ErrorBanner error={summary.error} onRetry={summary.reload} />}
      {summary.data === undefined ? (
        summary.error === undefined && <Loading what="fleet summary" />
      ) : (
        <>
          <StatusCards summary={summary.data} />
          <h2>Models in use</h2>
          <ModelsInUse models={summary.data.by_model_version} />
        </>
      )}

      <h2>Anomalies</h2>
      {rate.error !== undefined && <ErrorBanner error={rate.error} onRetry={rate.reload} />}
      {rate.data === undefined ? (
        rate.error === undefined && <Loading what="anomaly rate" />
      ) : (
        <AnomalyRate rate={rate.data} />
      )}

      <h2>Active rollouts</h2>
      {rollouts.error !== undefined && <ErrorBanner error={rollouts.error} onRetry={rollouts.reload} />}
      {rollouts.data === undefined ? (
        rollouts.error === undefined && <Loading what="rollouts" />
      ) : (
        <ActiveRollouts rollouts={rollouts.data} />
      )}

      <h2>Recent audit events</h2>
      {events.error !== undefined && <ErrorBanner error={events.error} onRetry={events.reload} />}
      {events.data === undefined ? (
        events.error === undefined && <Loading what="audit events" />
      ) : (
        <RecentEvents events={events.data.items} />
      )}
    </section>
  );
}
