/**
 * Models: every registered version with its stage, metrics and lineage; tick two to
 * compare them side by side. The pair is kept in the URL (?compare=a,b) so it can be shared.
 */
import { useMemo, useState, type ReactNode } from "react";
import { useSearchParams } from "react-router";

import { api, type Schemas } from "../api/client";
import { unwrap } from "../api/errors";
import { Empty, ErrorBanner, Loading } from "../components/Feedback";
import { FilterSelect, plainOptions } from "../components/FilterSelect";
import { Time } from "../components/Time";
import { useApi } from "../lib/useApi";
import { usePageTitle } from "../lib/usePageTitle";

type Model = Schemas["ModelVersionRead"];
type Stage = Schemas["ModelStage"];

const STAGES: Stage[] = ["candidate", "canary", "stable", "retired"];
const PAGE_SIZE = 100;

function lineageText(model: Model, key: string): string | null {
  const value = model.lineage[key];
  return typeof value === "string" && value !== "" ? value : null;
}

function metricText(value: number | undefined): string {
  return value === undefined ? "—" : value.toFixed(4);
}

function difference(a: number | undefined, b: number | undefined): string {
  if (a === undefined || b === undefined) {
    return "—";
  }
  const delta = b - a;
  if (Math.abs(delta) < 5e-5) {
    return "0";
  }
  return `${delta > 0 ? "+" : "−"}${Math.abs(delta).toFixed(4)}`;
}

function formatBytes(bytes: number): string {
  return bytes < 1024 * 1024 ? `${(bytes / 1024).toFixed(1)} KB` : `${(bytes / 1024 / 1024).toFixed(2)} MB`;
}

function StageBadge({ stage }: { stage: Stage }) {
  return <span className={`badge badge-${stage}`}>{stage}</span>;
}

function Metrics({ metrics }: { metrics: Record<string, number> }) {
  const entries = Object.entries(metrics);
  if (entries.length === 0) {
    return <span className="muted">none</span>;
  }
  return (
    <span className="chips">
      {entries.map(([name, value]) => (
        <span key={name} className="chip">
          {name} {value.toFixed(3)}
        </span>
      ))}
    </span>
  );
}

function Comparison({ ids, labels }: { ids: [string, string]; labels: Map<string, string> }) {
  const one = (id: string, signal: AbortSignal) =>
    unwrap(api.GET("/api/v1/models/{model_id}", { params: { path: { model_id: id } }, signal }));
  const pair = useApi(`compare:${ids.join(",")}`, (signal) => Promise.all([one(ids[0], signal), one(ids[1], signal)]));
  if (pair.error !== undefined) {
    return <ErrorBanner error={pair.error} onRetry={pair.reload} />;
  }
  if (pair.data === undefined) {
    return <Loading what="the two versions" />;
  }
  const [a, b] = pair.data;
  const parent = (model: Model) => {
    const id = lineageText(model, "parent_version_id");
    return id === null ? null : (labels.get(id) ?? id.slice(0, 8));
  };
  const facts: [string, (model: Model) => ReactNode, (model: Model) => string][] = [
    ["Stage", (m) => <StageBadge stage={m.stage} />, (m) => m.stage],
    ["Registered", (m) => <Time value={m.created_at} />, (m) => m.created_at],
    ["Threshold", (m) => m.threshold.toFixed(4), (m) => m.threshold.toFixed(4)],
    ["Quantization", (m) => m.quantization, (m) => m.quantization],
    ["Feature spec", (m) => m.feature_spec_version, (m) => String(m.feature_spec_version)],
    ["Size", (m) => formatBytes(m.size_bytes), (m) => String(m.size_bytes)],
    ["Source", (m) => lineageText(m, "source") ?? "—", (m) => lineageText(m, "source") ?? ""],
    ["Parent", (m) => parent(m) ?? "—", (m) => parent(m) ?? ""],
    ["Dataset snapshot", (m) => lineageText(m, "dataset_snapshot") ?? "—", (m) => lineageText(m, "dataset_snapshot") ?? ""],
    ["Code version", (m) => lineageText(m, "code_version") ?? "—", (m) => lineageText(m, "code_version") ?? ""],
    ["SHA-256", (m) => <code title={m.sha256}>{m.sha256.slice(0, 12)}</code>, (m) => m.sha256],
  ];
  const metricNames = [...new Set([...Object.keys(a.metrics), ...Object.keys(b.metrics)])].sort();

  return (
    <div className="table-wrap">
      <table className="table compare" aria-label="Comparison">
        <thead>
          <tr>
            <th />
            <th>{a.label}</th>
            <th>{b.label}</th>
            <th className="num">Difference</th>
          </tr>
        </thead>
        <tbody>
          {facts.map(([name, show, key]) => (
            <tr key={name} className={key(a) === key(b) ? undefined : "changed"}>
              <th scope="row">{name}</th>
              <td>{show(a)}</td>
              <td>{show(b)}</td>
              <td className="num">
                {name === "Threshold" ? difference(a.threshold, b.threshold) : key(a) === key(b) ? "same" : "differs"}
              </td>
            </tr>
          ))}
          <tr>
            <th scope="colgroup" colSpan={4}>
              Metrics
            </th>
          </tr>
          {metricNames.length === 0 ? (
            <tr>
              <td colSpan={4} className="muted">
                Neither version reports metrics.
              </td>
            </tr>
          ) : (
            metricNames.map((name) => (
              <tr key={`metric-${name}`} data-testid="metric-row">
                <th scope="row">{name}</th>
                <td>{metricText(a.metrics[name])}</td>
                <td>{metricText(b.metrics[name])}</td>
                <td className="num">{difference(a.metrics[name], b.metrics[name])}</td>
              </tr>
            ))
          )}
        </tbody>
      </table>
      <p className="muted small compare-note">Difference is the second version minus the first.</p>
    </div>
  );
}

export default function ModelsPage() {
  usePageTitle("Models");
  const [params, setParams] = useSearchParams();
  const stageParam = params.get("stage");
  const stage = stageParam !== null && (STAGES as string[]).includes(stageParam) ? (stageParam as Stage) : undefined;
  const compare = (params.get("compare") ?? "").split(",").filter((id) => id !== "").slice(0, 2);
  const [first, second] = compare;

  const [paging, setPaging] = useState<{ stage: string; cursors: (string | undefined)[] }>({
    stage: stage ?? "",
    cursors: [undefined],
  });
  const cursors = paging.stage === (stage ?? "") ? paging.cursors : [undefined];
  const cursor = cursors[cursors.length - 1];
  const models = useApi(
    `models:${stage ?? ""}@${cursor ?? ""}`,
    (signal) =>
      unwrap(api.GET("/api/v1/models", { params: { query: { stage, cursor, limit: PAGE_SIZE } }, signal })),
    { keepPrevious: true },
  );
  const labels = useMemo(
    () => new Map((models.data?.items ?? []).map((model) => [model.id, model.label])),
    [models.data],
  );

  const setParam = (key: string, value: string) => {
    setParams(
      (previous) => {
        const next = new URLSearchParams(previous);
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
  const toggleCompare = (id: string) => {
    const next = compare.includes(id) ? compare.filter((other) => other !== id) : [...compare, id].slice(-2);
    setParam("compare", next.join(","));
  };

  return (
    <section>
      <div className="page-head">
        <h1>Models</h1>
        <span className="muted">Tick two versions to compare them.</span>
      </div>
      <form
        className="filters"
        aria-label="Filters"
        onSubmit={(event) => {
          event.preventDefault();
        }}
      >
        <FilterSelect
          label="Stage"
          className="filter filter-fixed"
          value={stage ?? ""}
          options={plainOptions(STAGES)}
          onChange={(value) => {
            setParam("stage", value);
          }}
        />
      </form>

      {models.error !== undefined && <ErrorBanner error={models.error} onRetry={models.reload} />}
      {models.data === undefined ? (
        models.error === undefined && <Loading what="models" />
      ) : models.data.items.length === 0 && !models.loading ? (
        <Empty>
          {stage === undefined
            ? "No model is registered yet. Train one, or upload one trained elsewhere through the API."
            : `No model is ${stage}.`}
        </Empty>
      ) : (
        <div className={`table-wrap${models.loading ? " is-loading" : ""}`} aria-busy={models.loading}>
          <table className="table" aria-label="Model versions">
            <thead>
              <tr>
                <th>Compare</th>
                <th>Version</th>
                <th>Stage</th>
                <th>Registered</th>
                <th className="num">Threshold</th>
                <th>Metrics</th>
                <th className="hide-narrow">Source</th>
                <th className="hide-narrow">Parent</th>
                <th className="hide-narrow">Dataset snapshot</th>
                <th className="hide-narrow">Code version</th>
              </tr>
            </thead>
            <tbody>
              {models.data.items.map((model) => {
                const parent = lineageText(model, "parent_version_id");
                return (
                  <tr key={model.id} data-testid="model-row">
                    <td>
                      <input
                        type="checkbox"
                        aria-label={`Compare ${model.label}`}
                        checked={compare.includes(model.id)}
                        onChange={() => {
                          toggleCompare(model.id);
                        }}
                      />
                    </td>
                    <td className="nowrap">
                      <strong>{model.label}</strong>
                    </td>
                    <td>
                      <StageBadge stage={model.stage} />
                    </td>
                    <td className="nowrap">
                      <Time value={model.created_at} relative />
                    </td>
                    <td className="num">{model.threshold.toFixed(3)}</td>
                    <td>
                      <Metrics metrics={model.metrics} />
                    </td>
                    <td className="hide-narrow">{lineageText(model, "source") ?? "—"}</td>
                    <td className="hide-narrow">{parent === null ? "—" : (labels.get(parent) ?? parent.slice(0, 8))}</td>
                    <td className="hide-narrow truncate">{lineageText(model, "dataset_snapshot") ?? "—"}</td>
                    <td className="hide-narrow">{lineageText(model, "code_version") ?? "—"}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
      {models.data !== undefined && (cursors.length > 1 || models.data.next_cursor !== null) && (
        <nav className="pager" aria-label="Pages">
          <button
            type="button"
            className="button-secondary"
            disabled={cursors.length === 1 || models.loading}
            onClick={() => {
              setPaging({ stage: stage ?? "", cursors: cursors.slice(0, -1) });
            }}
          >
            Previous
          </button>
          <button
            type="button"
            className="button-secondary"
            disabled={models.data.next_cursor === null || models.loading}
            onClick={() => {
              const next = models.data?.next_cursor;
              if (next != null) {
                setPaging({ stage: stage ?? "", cursors: [...cursors, next] });
              }
            }}
          >
            Next
          </button>
        </nav>
      )}

      <h2>Compare</h2>
      {first !== undefined && second !== undefined ? (
        <Comparison ids={[first, second]} labels={labels} />
      ) : (
        <Empty>
          {compare.length === 0 ? "Tick two versions above to compare them." : "Tick one more version to compare."}
        </Empty>
      )}
    </section>
  );
}
