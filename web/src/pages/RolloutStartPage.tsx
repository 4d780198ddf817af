/**
 * Start a rollout: a candidate model, the devices it is for, the steps (prefilled with
 * the server's defaults) and, folded away, the analysis thresholds. The server checks
 * everything and its reason is shown as is.
 */
import { useState } from "react";
import { Link, useNavigate } from "react-router";

import { api, type Schemas } from "../api/client";
import { unwrap } from "../api/errors";
import { ErrorBanner, Loading } from "../components/Feedback";
import { LabelEditor, labelsFromRows, type LabelRow } from "../components/LabelEditor";
import { useApi } from "../lib/useApi";
import { usePageTitle } from "../lib/usePageTitle";
import { useSubmit } from "../lib/useSubmit";

type Thresholds = Schemas["AnalysisThresholds"];
type ThresholdKey = keyof Thresholds;
type TargetKind = Schemas["TargetKind"];

interface StepRow {
  percent: string;
  soak_seconds: string;
  min_devices: string;
}

const THRESHOLDS: { key: ThresholdKey; label: string; hint: string }[] = [
  { key: "max_load_failures", label: "Load failures allowed", hint: "on canary devices" },
  { key: "max_inference_error_rate", label: "Inference error rate, at most", hint: "errors per scored transaction" },
  { key: "max_latency_p95_ratio", label: "p95 latency ratio, at most", hint: "canary over stable" },
  { key: "latency_slack_ms", label: "Latency slack (ms)", hint: "added to stable before the ratio" },
  { key: "max_flag_rate_ratio", label: "Flag rate ratio, at most", hint: "higher or lower than stable" },
  { key: "flag_rate_slack", label: "Flag rate slack", hint: "difference always tolerated" },
  { key: "max_flag_rate", label: "Flag rate, at most", hint: "when there is no stable model" },
  { key: "max_precision_drop", label: "Precision drop, at most", hint: "on labelled anomalies" },
  { key: "min_labelled", label: "Labelled events needed", hint: "each side, before precision counts" },
  { key: "min_scored", label: "Scored transactions needed", hint: "on canary, before rates are judged" },
];

const TARGET_KINDS: { value: TargetKind; label: string }[] = [
  { value: "all", label: "Whole fleet" },
  { value: "clusters", label: "Clusters" },
  { value: "selector", label: "Devices with labels" },
];

function stepRows(steps: Schemas["RolloutStep"][]): StepRow[] {
  return steps.map((step) => ({
    percent: String(step.percent),
    soak_seconds: String(step.soak_seconds ?? 300),
    min_devices: String(step.min_devices ?? 1),
  }));
}

function thresholdTexts(thresholds: Thresholds): Record<string, string> {
  return Object.fromEntries(THRESHOLDS.map(({ key }) => [key, String(thresholds[key] ?? "")]));
}

/** The request body, or why the form cannot be sent yet. */
function requestBody(
  form: { modelId: string; kind: TargetKind; clusterIds: string[]; labels: LabelRow[]; steps: StepRow[] },
  thresholds: Record<string, string>,
): { body: Schemas["RolloutCreate"] } | { problem: string } {
  if (form.modelId === "") {
    return { problem: "choose the model to roll out" };
  }
  const target: Schemas["RolloutTarget"] = { kind: form.kind };
  if (form.kind === "clusters") {
    if (form.clusterIds.length === 0) {
      return { problem: "choose at least one cluster" };
    }
    target.cluster_ids = form.clusterIds;
  }
  if (form.kind === "selector") {
    const parsed = labelsFromRows(form.labels);
    if ("problem" in parsed) {
      return parsed;
    }
    target.labels = parsed.labels;
  }
  const steps: Schemas["RolloutStep"][] = [];
  for (const [index, row] of form.steps.entries()) {
    const step = {
      percent: Number(row.percent),
      soak_seconds: Number(row.soak_seconds),
      min_devices: Number(row.min_devices),
    };
    if (Object.values(step).some((value) => !Number.isFinite(value)) || row.percent.trim() === "") {
      return { problem: `step ${index + 1} needs numbers for its percent, soak and devices` };
    }
    steps.push(step);
  }
  const values: Partial<Thresholds> = {};
  for (const { key, label } of THRESHOLDS) {
    const text = thresholds[key] ?? "";
    const value = Number(text);
    if (text.trim() === "" || !Number.isFinite(value)) {
      return { problem: `${label} needs a number` };
    }
    values[key] = value;
  }
  return { body: { model_id: form.modelId, target, steps, thresholds: values } };
}

function StepsEditor({ rows, onChange }: { rows: StepRow[]; onChange: (rows: StepRow[]) => void }) {
  const update = (index: number, change: Partial<StepRow>) => {
    onChange(rows.map((row, i) => (i === index ? { ...row, ...change } : row)));
  };
  return (
    <div className="stack">
      {rows.map((row, index) => (
        <div className="step-row" key={index} data-testid="step-row">
          <label>
            Step {index + 1} percent
            <input
              inputMode="decimal"
              value={row.percent}
              aria-label={`Step ${index + 1} percent`}
              onChange={(event) => {
                update(index, { percent: event.target.value });
              }}
            />
          </label>
          <label>
            Soak (s)
            <input
              inputMode="numeric"
              value={row.soak_seconds}
              aria-label={`Step ${index + 1} soak seconds`}
              onChange={(event) => {
                update(index, { soak_seconds: event.target.value });
              }}
            />
          </label>
          <label>
            Devices reporting
            <input
              inputMode="numeric"
              value={row.min_devices}
              aria-label={`Step ${index + 1} minimum devices`}
              onChange={(event) => {
                update(index, { min_devices: event.target.value });
              }}
            />
          </label>
          <button
            type="button"
            className="button-secondary"
            disabled={rows.length === 1}
            aria-label={`Remove step ${index + 1}`}
            onClick={() => {
              onChange(rows.filter((_, i) => i !== index));
            }}
          >
            Remove
          </button>
        </div>
      ))}
      <button
        type="button"
        className="button-secondary"
        onClick={() => {
          onChange([...rows, { percent: "100", soak_seconds: "300", min_devices: "1" }]);
        }}
      >
        Add step
      </button>
    </div>
  );
}

function StartForm({ defaults, models }: { defaults: Schemas["RolloutDefaults"]; models: Schemas["ModelVersionRead"][] }) {
  const navigate = useNavigate();
  const clusters = useApi("clusters", (signal) => unwrap(api.GET("/api/v1/clusters", { signal })));
  const [modelId, setModelId] = useState(models[0]?.id ?? "");
  const [kind, setKind] = useState<TargetKind>("all");
  const [clusterIds, setClusterIds] = useState<string[]>([]);
  const [labels, setLabels] = useState<LabelRow[]>([{ key: "", value: "" }]);
  const [steps, setSteps] = useState<StepRow[]>(() => stepRows(defaults.steps));
  const [thresholds, setThresholds] = useState<Record<string, string>>(() => thresholdTexts(defaults.thresholds));
  const submission = useSubmit();

  const submit = () => {
    const built = requestBody({ modelId, kind, clusterIds, labels, steps }, thresholds);
    if ("problem" in built) {
      submission.refuse(built.problem);
      return;
    }
    void submission.run(async () => {
      const created = await unwrap(api.POST("/api/v1/rollouts", { body: built.body }));
      void navigate(`/rollouts/${created.id}`);
    });
  };

  return (
    <form
      className="stack"
      aria-label="Start rollout"
      onSubmit={(event) => {
        event.preventDefault();
        submit();
      }}
    >
      <div className="card stack">
        <h2>Model and target</h2>
        <div className="form-grid">
          <label>
            Model
            <select
              aria-label="Model"
              value={modelId}
              onChange={(event) => {
                setModelId(event.target.value);
              }}
            >
              <option value="">choose a candidate…</option>
              {models.map((model) => (
                <option key={model.id} value={model.id}>
                  {model.label}
                </option>
              ))}
            </select>
          </label>
          <label>
            Target
            <select
              aria-label="Target"
              value={kind}
              onChange={(event) => {
                setKind(event.target.value as TargetKind);
              }}
            >
              {TARGET_KINDS.map((option) => (
                <option key={option.value} value={option.value}>
                  {option.label}
                </option>
              ))}
            </select>
          </label>
        </div>
        {kind === "clusters" && (
          <fieldset>
            <legend>Clusters</legend>
            {clusters.error !== undefined && <ErrorBanner error={clusters.error} onRetry={clusters.reload} />}
            {clusters.data === undefined ? (
              clusters.error === undefined && <Loading what="clusters" />
            ) : clusters.data.items.length === 0 ? (
              <p className="muted">There are no clusters yet.</p>
            ) : (
              clusters.data.items.map((cluster) => (
                <label key={cluster.id} className="inline">
                  <input
                    type="checkbox"
                    checked={clusterIds.includes(cluster.id)}
                    onChange={(event) => {
                      setClusterIds(
                        event.target.checked
                          ? [...clusterIds, cluster.id]
                          : clusterIds.filter((id) => id !== cluster.id),
                      );
                    }}
                  />
                  {cluster.name}
                </label>
              ))
            )}
          </fieldset>
        )}
        {kind === "selector" && (
          <fieldset>
            <legend>Devices with all of these labels</legend>
            <LabelEditor rows={labels} onChange={setLabels} />
          </fieldset>
        )}
      </div>

      <div className="card stack">
        <h2>Steps</h2>
        <p className="muted small">
          Each step puts a larger share of the target on the new model. A step passes once it has soaked for its time,
          enough canary devices report, and the analysis finds the canary no worse than stable. The last step is 100%.
        </p>
        <StepsEditor rows={steps} onChange={setSteps} />
      </div>

      <details className="card">
        <summary>Analysis thresholds (defaults)</summary>
        <div className="form-grid">
          {THRESHOLDS.map(({ key, label, hint }) => (
            <label key={key}>
              {label}
              <input
                inputMode="decimal"
                value={thresholds[key] ?? ""}
                onChange={(event) => {
                  setThresholds({ ...thresholds, [key]: event.target.value });
                }}
              />
              <span className="hint small">{hint}</span>
            </label>
          ))}
        </div>
      </details>

      {submission.problem !== null && (
        <p className="field-problem" role="alert">
          {submission.problem}
        </p>
      )}
      {submission.error !== null && <ErrorBanner error={submission.error} />}
      <div className="actions">
        <Link to="/rollouts" className="button-link">
          Cancel
        </Link>
        <button type="submit" className="button-primary" disabled={submission.pending}>
          {submission.pending ? "Starting…" : "Start rollout"}
        </button>
      </div>
    </form>
  );
}

export default function RolloutStartPage() {
  usePageTitle("Start rollout");
  const defaults = useApi("rollout-defaults", (signal) => unwrap(api.GET("/api/v1/rollouts/defaults", { signal })));
  const models = useApi("candidate-models", (signal) =>
    unwrap(api.GET("/api/v1/models", { params: { query: { stage: "candidate", limit: 100 } }, signal })),
  );
  const failed = defaults.error ?? models.error;

  return (
    <section>
      <p>
        <Link to="/rollouts">← Rollouts</Link>
      </p>
      <div className="page-head">
        <h1>Start rollout</h1>
      </div>
      {failed !== undefined && (
        <ErrorBanner
          error={failed}
          onRetry={() => {
            defaults.reload();
            models.reload();
          }}
        />
      )}
      {defaults.data === undefined || models.data === undefined ? (
        failed === undefined && <Loading what="models and defaults" />
      ) : models.data.items.length === 0 ? (
        <div className="empty">
          No model is a candidate, so there is nothing to roll out. Training registers new versions as candidates; see{" "}
          <Link to="/models">Models</Link>.
        </div>
      ) : (
        <StartForm defaults={defaults.data} models={models.data.items} />
      )}
    </section>
  );
}
