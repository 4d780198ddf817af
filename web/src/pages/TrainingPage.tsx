/**
 * Retraining: every run that was asked for (on demand, by the schedule or by drift),
 * with what fired it and how it ended: a candidate registered because it passed the
 * gate, or why not. Operators ask for a run here.
 */
import { Fragment, useState, type SubmitEvent } from "react";
import { Link, useSearchParams } from "react-router";

import { api, type Schemas } from "../api/client";
import { unwrap } from "../api/errors";
import { Empty, ErrorBanner, Loading, Notice } from "../components/Feedback";
import { FilterSelect } from "../components/FilterSelect";
import { Pager } from "../components/Pager";
import { RequireRole } from "../components/RequireRole";
import { Time } from "../components/Time";
import { formatCount, formatDuration } from "../lib/format";
import { useApi } from "../lib/useApi";
import { usePageTitle } from "../lib/usePageTitle";
import { usePoll } from "../lib/usePoll";
import { useSubmit } from "../lib/useSubmit";

type Run = Schemas["TrainingRunRead"];
type RunState = Schemas["RunState"];
type RunTrigger = Schemas["RunTrigger"];

const STATES: RunState[] = ["queued", "running", "registered", "rejected", "failed", "skipped"];
const TRIGGERS: { value: RunTrigger; label: string }[] = [
  { value: "on_demand", label: "on demand" },
  { value: "schedule", label: "schedule" },
  { value: "drift", label: "drift" },
];
const DEFAULT_LIMIT = 25;
const POLL_MS = 5000;

interface DriftCheck {
  check: string;
  fired: boolean;
  evaluated: boolean;
  detail: string;
}

function triggerText(trigger: RunTrigger): string {
  return trigger.replace("_", " ");
}

function isActive(run: Run): boolean {
  return run.state === "queued" || run.state === "running";
}

/** The drift checks a drift-triggered run recorded, read defensively from its evidence. */
function driftChecks(run: Run): DriftCheck[] {
  const checks = run.evidence.checks;
  if (!Array.isArray(checks)) {
    return [];
  }
  return checks.flatMap((item: unknown) => {
    if (typeof item !== "object" || item === null) {
      return [];
    }
    const { check, fired, evaluated, detail } = item as Record<string, unknown>;
    return typeof check === "string" && typeof detail === "string"
      ? [{ check, fired: fired === true, evaluated: evaluated === true, detail }]
      : [];
  });
}

/** Why the run was asked for, in a few words. */
function whyText(run: Run): string {
  if (run.trigger === "drift") {
    const fired = driftChecks(run).filter((check) => check.fired);
    const model = typeof run.evidence.model_label === "string" ? ` of ${run.evidence.model_label}` : "";
    return fired.length === 0 ? `drift${model}` : `${fired.map((check) => check.check.replace("_", " ")).join(", ")}${model}`;
  }
  if (run.trigger === "schedule") {
    const hours = run.evidence.schedule_hours;
    return typeof hours === "number" ? `every ${formatDuration(hours * 3600)}` : "the schedule";
  }
  return run.note !== null && run.note !== "" ? `${run.requested_by}: ${run.note}` : `asked by ${run.requested_by}`;
}

function Outcome({ run }: { run: Run }) {
  if (run.state === "registered") {
    const stableId = run.gate?.stable_model_id ?? null;
    const to =
      run.model_id !== null && stableId !== null ? `/models?compare=${stableId},${run.model_id}` : "/models?stage=candidate";
    return (
      <span>
        <Link to={to}>{run.model_label ?? "candidate"}</Link> registered
      </span>
    );
  }
  const text = run.reason ?? run.error;
  return text === null ? <span className="muted">—</span> : <span className="outcome-text">{text}</span>;
}

function GateTable({ gate }: { gate: Schemas["GateResult"] }) {
  const fpr = `${(gate.margins.false_positive_rate * 100).toFixed(2)}% FPR`;
  const rows: [string, keyof Schemas["GateSide"], number | null][] = [
    ["PR-AUC", "pr_auc", gate.margins.pr_auc],
    [`Recall at ${fpr}`, "recall_at_fpr", gate.margins.recall],
    ["Precision at its threshold", "precision", null],
    ["Recall at its threshold", "recall", null],
    ["Threshold", "threshold", null],
  ];
  const stable = gate.stable ?? null;
  return (
    <div className="table-wrap">
      <table className="table compare" aria-label="Gate">
        <thead>
          <tr>
            <th />
            <th>Candidate</th>
            <th>{stable === null ? "Stable" : `Stable (${gate.stable_label ?? "stable"})`}</th>
            <th className="num">Margin</th>
          </tr>
        </thead>
        <tbody>
          {rows.map(([name, key, margin]) => (
            <tr key={key}>
              <th scope="row">{name}</th>
              <td>{gate.candidate[key].toFixed(4)}</td>
              <td>{stable === null ? <span className="muted">none</span> : stable[key].toFixed(4)}</td>
              <td className="num">{margin === null ? "" : margin}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <p className="muted small compare-note">
        Both models scored on the same held-out, time-later slice: {formatCount(gate.test_rows)} transactions,{" "}
        {formatCount(gate.test_positives)} of them fraud.
      </p>
    </div>
  );
}

function RunDetails({ run }: { run: Run }) {
  const checks = driftChecks(run);
  return (
    <div className="stack run-details" data-testid="run-details">
      <dl className="details">
        <dt>Fleet data</dt>
        <dd>
          <Time value={run.window_start} /> to <Time value={run.window_end} />
        </dd>
        <dt>Requested by</dt>
        <dd>{run.requested_by}</dd>
        {run.note !== null && run.note !== "" && (
          <>
            <dt>Note</dt>
            <dd>{run.note}</dd>
          </>
        )}
        <dt>Started</dt>
        <dd>
          <Time value={run.started_at} />
        </dd>
        <dt>Finished</dt>
        <dd>
          <Time value={run.finished_at} />
        </dd>
        {run.snapshot_key !== null && (
          <>
            <dt>Dataset snapshot</dt>
            <dd>
              <code>{run.snapshot_key}</code>
            </dd>
          </>
        )}
        {run.reason !== null && (
          <>
            <dt>{run.state === "skipped" ? "Skipped" : "Verdict"}</dt>
            <dd>{run.reason}</dd>
          </>
        )}
        {run.error !== null && (
          <>
            <dt>Error</dt>
            <dd>{run.error}</dd>
          </>
        )}
      </dl>
      {checks.length > 0 && (
        <div className="table-wrap">
          <table className="table" aria-label="Drift checks">
            <thead>
              <tr>
                <th>Check</th>
                <th>Verdict</th>
                <th>Numbers</th>
              </tr>
            </thead>
            <tbody>
              {checks.map((check) => (
                <tr key={check.check}>
                  <td className="nowrap">{check.check.replace("_", " ")}</td>
                  <td>
                    <span className={`badge badge-${check.fired ? "fail" : check.evaluated ? "pass" : "wait"}`}>
                      {check.fired ? "fired" : check.evaluated ? "quiet" : "too little data"}
                    </span>
                  </td>
                  <td>{check.detail}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {run.gate !== null && <GateTable gate={run.gate} />}
    </div>
  );
}

function RetrainForm({ onRequested }: { onRequested: (run: Run) => void }) {
  const [hours, setHours] = useState("");
  const [note, setNote] = useState("");
  const submission = useSubmit();

  const submit = (event: SubmitEvent) => {
    event.preventDefault();
    const value = Number(hours);
    if (hours.trim() !== "" && (!Number.isFinite(value) || value <= 0)) {
      submission.refuse("the hours of fleet data must be a positive number");
      return;
    }
    void submission.run(async () => {
      const body: Schemas["TrainingRunCreate"] = { note: note.trim() === "" ? null : note.trim() };
      if (hours.trim() !== "") {
        body.window_start = new Date(Date.now() - value * 3600 * 1000).toISOString();
      }
      const run = await unwrap(api.POST("/api/v1/training/runs", { body }));
      setNote("");
      onRequested(run);
    });
  };

  return (
    <form className="card stack form" aria-label="Retrain now" onSubmit={submit}>
      <h2>Retrain now</h2>
      <p className="muted small">
        Trains on what the fleet uploaded (anomalies, samples and their labels) and registers a candidate only if it is
        not worse than the stable model on the newest data.
      </p>
      {submission.error !== null && <ErrorBanner error={submission.error} />}
      {submission.problem !== null && <p className="field-problem">{submission.problem}</p>}
      <div className="form-grid">
        <label>
          Hours of fleet data
          <input
            name="hours"
            inputMode="decimal"
            placeholder="server default"
            value={hours}
            onChange={(event) => {
              setHours(event.target.value);
            }}
          />
        </label>
        <label>
          Note
          <input
            name="note"
            placeholder="why now"
            maxLength={1000}
            value={note}
            onChange={(event) => {
              setNote(event.target.value);
            }}
          />
        </label>
      </div>
      <div className="actions">
        <button type="submit" className="button-primary" disabled={submission.pending}>
          {submission.pending ? "Asking…" : "Retrain now"}
        </button>
      </div>
    </form>
  );
}

export default function TrainingPage() {
  usePageTitle("Retraining");
  const [params, setParams] = useSearchParams();
  const state = STATES.find((value) => value === params.get("state"));
  const trigger = TRIGGERS.find((option) => option.value === params.get("trigger"))?.value;
  const limitParam = Number(params.get("limit"));
  const limit = [25, 50, 100].includes(limitParam) ? limitParam : DEFAULT_LIMIT;
  const listingKey = JSON.stringify({ state, trigger, limit });
  const [paging, setPaging] = useState<{ key: string; cursors: (string | undefined)[] }>({
    key: listingKey,
    cursors: [undefined],
  });
  const cursors = paging.key === listingKey ? paging.cursors : [undefined];
  const cursor = cursors[cursors.length - 1];
  const [open, setOpen] = useState<string | null>(null);
  const [requested, setRequested] = useState<Run | null>(null);

  const runs = useApi(
    `training-runs:${listingKey}@${cursor ?? ""}`,
    (signal) =>
      unwrap(api.GET("/api/v1/training/runs", { params: { query: { state, trigger, limit, cursor } }, signal })),
    { keepPrevious: true },
  );
  const anyActive = (runs.data?.items ?? []).some(isActive);
  usePoll(runs.reload, POLL_MS, anyActive);

  const setParam = (key: string, value: string) => {
    setParams(
      (current) => {
        const next = new URLSearchParams(current);
        if (value === "") {
          next.delete(key);
        } else {
          next.set(key, value);
        }
        return next;
      },
      { replace: true },
    );
  };

  return (
    <section>
      <div className="page-head">
        <h1>Retraining</h1>
      </div>
      <p className="muted">
        A run is asked for on demand, by the schedule, or when the drift check finds the stable model out of step with the
        fleet. A candidate that passes the gate is registered; a rollout takes it to the devices.
      </p>

      <RequireRole role="operator">
        <RetrainForm
          onRequested={(run) => {
            setRequested(run);
            setOpen(run.id);
            runs.reload();
          }}
        />
      </RequireRole>
      {requested !== null && (
        <Notice>
          {requested.state === "skipped"
            ? `Not started: ${requested.reason ?? "another run is running"}.`
            : "Run queued; the worker takes it next. This page follows it."}
        </Notice>
      )}

      <form
        className="filters"
        aria-label="Filters"
        onSubmit={(event) => {
          event.preventDefault();
        }}
      >
        <FilterSelect
          label="Trigger"
          className="filter filter-fixed"
          value={trigger ?? ""}
          options={TRIGGERS}
          onChange={(value) => {
            setParam("trigger", value);
          }}
        />
        <FilterSelect
          label="State"
          className="filter filter-fixed"
          value={state ?? ""}
          options={STATES.map((value) => ({ value, label: value }))}
          onChange={(value) => {
            setParam("state", value);
          }}
        />
      </form>

      {runs.error !== undefined && <ErrorBanner error={runs.error} onRetry={runs.reload} />}
      {runs.data === undefined ? (
        runs.error === undefined && <Loading what="training runs" />
      ) : runs.data.items.length === 0 ? (
        <Empty>
          {state === undefined && trigger === undefined
            ? "No retraining has been asked for yet."
            : "No training run matches these filters."}
        </Empty>
      ) : (
        <>
          <div className={`table-wrap${runs.loading ? " is-loading" : ""}`}>
            <table className="table" aria-label="Training runs">
              <thead>
                <tr>
                  <th>Asked</th>
                  <th>Trigger</th>
                  <th className="hide-narrow">Why</th>
                  <th>State</th>
                  <th>Outcome</th>
                  <th />
                </tr>
              </thead>
              <tbody>
                {runs.data.items.map((run) => (
                  <Fragment key={run.id}>
                    <tr data-testid="training-run">
                      <td className="nowrap">
                        <Time value={run.created_at} relative />
                      </td>
                      <td className="nowrap">{triggerText(run.trigger)}</td>
                      <td className="hide-narrow truncate">{whyText(run)}</td>
                      <td>
                        <span className={`badge badge-run-${run.state}`}>{run.state}</span>
                      </td>
                      <td>
                        <Outcome run={run} />
                      </td>
                      <td>
                        <button
                          type="button"
                          className="button-link"
                          aria-expanded={open === run.id}
                          onClick={() => {
                            setOpen(open === run.id ? null : run.id);
                          }}
                        >
                          {open === run.id ? "Hide" : "Details"}
                        </button>
                      </td>
                    </tr>
                    {open === run.id && (
                      <tr className="detail-row">
                        <td colSpan={6}>
                          <RunDetails run={run} />
                        </td>
                      </tr>
                    )}
                  </Fragment>
                ))}
              </tbody>
            </table>
          </div>
          <Pager
            page={cursors.length}
            hasNext={runs.data.next_cursor !== null}
            loading={runs.loading}
            limit={limit}
            onPrevious={() => {
              setPaging({ key: listingKey, cursors: cursors.slice(0, -1) });
            }}
            onNext={() => {
              const next = runs.data?.next_cursor;
              if (next != null) {
                setPaging({ key: listingKey, cursors: [...cursors, next] });
              }
            }}
            onLimit={(value) => {
              setParam("limit", value === DEFAULT_LIMIT ? "" : String(value));
            }}
          />
        </>
      )}
    </section>
  );
}
