/**
 * One rollout, live: its steps, the cohort, the soak countdown, the last analysis and
 * why, canary against stable per metric over time, the timeline, and the operator's
 * controls. The page refreshes itself while the rollout is active.
 */
import { useCallback, useEffect, useMemo, useState } from "react";
import { Link, useParams } from "react-router";

import { api, type Schemas } from "../api/client";
import { unwrap } from "../api/errors";
import { RolloutStateBadge, VerdictBadge } from "../components/Badges";
import { ConfirmButton } from "../components/ConfirmButton";
import { Empty, ErrorBanner, Loading } from "../components/Feedback";
import { LineChart, type ChartSeries } from "../components/LineChart";
import { RequireRole } from "../components/RequireRole";
import { Time } from "../components/Time";
import { formatDuration, formatNumber, formatPercent } from "../lib/format";
import { isActive, targetText, type Rollout } from "../lib/rollouts";
import { useApi } from "../lib/useApi";
import { usePageTitle } from "../lib/usePageTitle";
import { usePoll } from "../lib/usePoll";
import { useSubmit } from "../lib/useSubmit";

type Analysis = Schemas["AnalysisRead"];
type Check = Schemas["MetricCheck"];

const POLL_MS = 3000;

function StepProgress({ rollout }: { rollout: Rollout }) {
  const finished = rollout.state === "succeeded";
  return (
    <ol className="steps" aria-label="Steps">
      {rollout.steps.map((step, index) => {
        const done = finished || index < rollout.current_step;
        const current = !finished && index === rollout.current_step;
        return (
          <li
            key={step.percent}
            className={`step ${done ? "step-done" : current ? "step-current" : ""}`}
            aria-current={current ? "step" : undefined}
          >
            <strong>{formatPercent(step.percent)}</strong>
            <span className="small">
              step {index + 1} · soak {formatDuration(step.soak_seconds ?? 0)}
            </span>
          </li>
        );
      })}
    </ol>
  );
}

function useNow(active: boolean): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (!active) {
      return;
    }
    const timer = window.setInterval(() => {
      setNow(Date.now());
    }, 1000);
    return () => {
      window.clearInterval(timer);
    };
  }, [active]);
  return now;
}

function SoakCountdown({ rollout }: { rollout: Rollout }) {
  const running = rollout.state === "running";
  const now = useNow(running);
  if (!isActive(rollout.state)) {
    return <span className="muted">over</span>;
  }
  const soak = rollout.steps[rollout.current_step]?.soak_seconds ?? 0;
  const remaining = (Date.parse(rollout.step_started_at) + soak * 1000 - now) / 1000;
  if (remaining <= 0) {
    return <span>soaked</span>;
  }
  return (
    <span data-testid="soak-remaining">
      {formatDuration(remaining)} left{running ? "" : " (paused)"}
    </span>
  );
}

function Actions({ rollout, onChanged }: { rollout: Rollout; onChanged: () => void }) {
  const submission = useSubmit();
  const path = { params: { path: { rollout_id: rollout.id } } };
  const act = async (action: "pause" | "resume" | "promote" | "abort") => {
    await unwrap(api.POST(`/api/v1/rollouts/{rollout_id}/${action}`, path));
    onChanged();
  };
  const quick = (action: "pause" | "resume") => submission.run(() => act(action));
  const active = isActive(rollout.state);

  return (
    <div className="stack">
      <div className="actions">
        {rollout.state === "paused" ? (
          <button
            type="button"
            className="button-secondary"
            disabled={submission.pending}
            onClick={() => void quick("resume")}
          >
            Resume
          </button>
        ) : (
          <button
            type="button"
            className="button-secondary"
            disabled={submission.pending || rollout.state !== "running"}
            onClick={() => void quick("pause")}
          >
            Pause
          </button>
        )}
        <ConfirmButton
          label="Promote"
          title={`Promote ${rollout.model_label}?`}
          confirmLabel="Promote to every device"
          disabled={!active}
          onConfirm={() => act("promote")}
        >
          <p>
            Every device of the target gets {rollout.model_label} now, without waiting for the remaining steps
            or their analysis.
          </p>
        </ConfirmButton>
        <ConfirmButton
          label="Abort"
          title={`Abort the rollout of ${rollout.model_label}?`}
          confirmLabel="Abort rollout"
          danger
          disabled={!active}
          onConfirm={() => act("abort")}
        >
          <p>
            The rollout stops and its canary devices go back to{" "}
            {rollout.baseline_label ?? "no model (there was no stable one)"}.
          </p>
        </ConfirmButton>
      </div>
      {submission.error !== null && <ErrorBanner error={submission.error} />}
    </div>
  );
}

function formatMetric(value: number | null, unit: string): string {
  if (value === null) {
    return "—";
  }
  return `${formatNumber(value)} ${unit}`.trim();
}

function Checks({ checks }: { checks: Check[] }) {
  if (checks.length === 0) {
    return <p className="muted">No metric was checked.</p>;
  }
  return (
    <div className="table-wrap">
      <table className="table" aria-label="Checks">
        <thead>
          <tr>
            <th>Metric</th>
            <th className="num">Canary</th>
            <th className="num">Stable</th>
            <th className="num">Limit</th>
            <th>Result</th>
          </tr>
        </thead>
        <tbody>
          {checks.map((check) => (
            <tr key={check.metric}>
              <td>
                {check.metric}
                {check.note !== "" && <div className="muted small">{check.note}</div>}
              </td>
              <td className="num">{formatMetric(check.canary, check.unit)}</td>
              <td className="num">{formatMetric(check.stable, check.unit)}</td>
              <td className="num">{formatMetric(check.limit, check.unit)}</td>
              <td>
                {check.passed === null ? (
                  <span className="muted">not enough data</span>
                ) : (
                  <VerdictBadge verdict={check.passed ? "pass" : "fail"} />
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function LastAnalysis({ rollout }: { rollout: Rollout }) {
  const analysis = rollout.last_analysis;
  return (
    <div className="card">
      <h2>Last analysis</h2>
      {analysis === null ? (
        <p className="muted">Not analysed yet: the worker analyses running rollouts every few seconds.</p>
      ) : (
        <div className="stack">
          <p data-testid="verdict">
            <VerdictBadge verdict={analysis.verdict} /> {analysis.reason}{" "}
            <span className="muted small">
              (step {analysis.step + 1}, <Time value={analysis.at} relative />)
            </span>
          </p>
          <Checks checks={analysis.checks} />
        </div>
      )}
    </div>
  );
}

/** Each metric's canary, stable and limit values over the analyses, for its chart. */
function metricSeries(analyses: Analysis[]): { metric: string; unit: string; series: ChartSeries[] }[] {
  const byMetric = new Map<string, { unit: string; canary: ChartSeries; stable: ChartSeries; limit: ChartSeries }>();
  for (const analysis of analyses) {
    for (const check of analysis.checks) {
      let entry = byMetric.get(check.metric);
      if (entry === undefined) {
        entry = {
          unit: check.unit,
          canary: { name: "canary", points: [] },
          stable: { name: "stable", points: [] },
          limit: { name: "limit", points: [], limit: true },
        };
        byMetric.set(check.metric, entry);
      }
      entry.canary.points.push({ at: analysis.at, value: check.canary });
      entry.stable.points.push({ at: analysis.at, value: check.stable });
      entry.limit.points.push({ at: analysis.at, value: check.limit });
    }
  }
  return [...byMetric].map(([metric, entry]) => ({
    metric,
    unit: entry.unit,
    series: [entry.canary, entry.stable, entry.limit],
  }));
}

function AnalysisCharts({ analyses }: { analyses: Analysis[] }) {
  const charts = useMemo(() => metricSeries(analyses), [analyses]);
  if (charts.length === 0) {
    return <Empty>No analysis yet, so nothing to chart.</Empty>;
  }
  return (
    <div className="grid-2">
      {charts.map((chart) => (
        <div className="card" key={chart.metric}>
          <LineChart
            title={chart.metric}
            unit={chart.unit}
            series={chart.series}
            empty="Not enough data yet on either side."
          />
        </div>
      ))}
    </div>
  );
}

function Timeline({ events }: { events: Schemas["RolloutEventRead"][] }) {
  if (events.length === 0) {
    return <Empty>Nothing has happened yet.</Empty>;
  }
  return (
    <ol className="timeline card" aria-label="Timeline">
      {events.map((event) => (
        <li key={event.id}>
          <span className="small nowrap">
            <Time value={event.at} />
          </span>
          <span>
            <code>{event.kind}</code> {event.message} <span className="muted small">by {event.actor}</span>
          </span>
        </li>
      ))}
    </ol>
  );
}

export default function RolloutPage() {
  const { rolloutId = "" } = useParams();
  const path = { params: { path: { rollout_id: rolloutId } } };
  const rollout = useApi(`rollout:${rolloutId}`, (signal) =>
    unwrap(api.GET("/api/v1/rollouts/{rollout_id}", { ...path, signal })),
  );
  const timeline = useApi(`rollout-timeline:${rolloutId}`, (signal) =>
    unwrap(api.GET("/api/v1/rollouts/{rollout_id}/timeline", { ...path, signal })),
  );
  const analyses = useApi(`rollout-analyses:${rolloutId}`, (signal) =>
    unwrap(api.GET("/api/v1/rollouts/{rollout_id}/analyses", { ...path, signal })),
  );
  const clusters = useApi("clusters", (signal) => unwrap(api.GET("/api/v1/clusters", { signal })));
  const clusterNames = useMemo(
    () => new Map((clusters.data?.items ?? []).map((cluster) => [cluster.id, cluster.name])),
    [clusters.data],
  );
  const { reload: reloadRollout } = rollout;
  const { reload: reloadTimeline } = timeline;
  const { reload: reloadAnalyses } = analyses;
  const refresh = useCallback(() => {
    reloadRollout();
    reloadTimeline();
    reloadAnalyses();
  }, [reloadRollout, reloadTimeline, reloadAnalyses]);
  const current = rollout.data;
  usePoll(refresh, POLL_MS, current !== undefined && isActive(current.state));
  usePageTitle(current === undefined ? "Rollout" : `Rollout of ${current.model_label}`);

  if (current === undefined) {
    return (
      <section>
        <p>
          <Link to="/rollouts">← Rollouts</Link>
        </p>
        {rollout.error !== undefined ? (
          <ErrorBanner error={rollout.error} onRetry={rollout.error.status === 404 ? undefined : rollout.reload} />
        ) : (
          <Loading what="rollout" />
        )}
      </section>
    );
  }

  const step = current.steps[current.current_step];
  const analysis = current.last_analysis;
  return (
    <section>
      <p>
        <Link to="/rollouts">← Rollouts</Link>
      </p>
      <div className="page-head">
        <h1>
          {current.model_label} <RolloutStateBadge state={current.state} />
        </h1>
        <RequireRole role="operator">
          <Actions rollout={current} onChanged={refresh} />
        </RequireRole>
      </div>
      <p className="muted">
        Replacing {current.baseline_label ?? "nothing (no stable model before)"} on {targetText(current.target, clusterNames)}
        . Started by {current.created_by} <Time value={current.created_at} relative />.
      </p>
      {rollout.error !== undefined && <ErrorBanner error={rollout.error} onRetry={rollout.reload} />}

      <StepProgress rollout={current} />
      <div className="grid-2">
        <div className="card">
          <h2>Progress</h2>
          <dl className="details">
            <dt>Step</dt>
            <dd data-testid="current-step">
              {current.state === "succeeded"
                ? "all steps done"
                : `${current.current_step + 1} of ${current.steps.length}${step === undefined ? "" : ` · ${formatPercent(step.percent)}`}`}
            </dd>
            <dt>Cohort</dt>
            <dd>
              {current.cohort_size.toLocaleString()} of {current.target_size.toLocaleString()} devices on the new model
            </dd>
            <dt>Soak</dt>
            <dd>
              <SoakCountdown rollout={current} />
            </dd>
            <dt>Reporting devices</dt>
            <dd>
              {analysis === null
                ? "—"
                : `${analysis.reporting_devices.toLocaleString()} of ${analysis.required_devices.toLocaleString()} needed`}
            </dd>
            <dt>Step started</dt>
            <dd>
              <Time value={current.step_started_at} />
            </dd>
            {current.finished_at !== null && (
              <>
                <dt>Finished</dt>
                <dd>
                  <Time value={current.finished_at} />
                </dd>
              </>
            )}
            {current.decision !== null && (
              <>
                <dt>Decision</dt>
                <dd data-testid="decision">{current.decision}</dd>
              </>
            )}
          </dl>
        </div>
        <LastAnalysis rollout={current} />
      </div>

      <h2>Canary against stable</h2>
      {analyses.error !== undefined && <ErrorBanner error={analyses.error} onRetry={analyses.reload} />}
      {analyses.data === undefined ? (
        analyses.error === undefined && <Loading what="analyses" />
      ) : (
        <AnalysisCharts analyses={analyses.data.items} />
      )}

      <h2>Timeline</h2>
      {timeline.error !== undefined && <ErrorBanner error={timeline.error} onRetry={timeline.reload} />}
      {timeline.data === undefined ? (
        timeline.error === undefined && <Loading what="timeline" />
      ) : (
        <Timeline events={timeline.data.items} />
      )}
    </section>
  );
}
