import { useState } from "react";
import { Link, useParams } from "react-router";

import { api, type Schemas } from "../api/client";
import { unwrap } from "../api/errors";
import { LabelChips, StatusBadge } from "../components/Badges";
import { ConfirmButton } from "../components/ConfirmButton";
import { ErrorBanner, Loading, Notice } from "../components/Feedback";
import { LabelEditor, labelsFromRows, rowsFromLabels, type LabelRow } from "../components/LabelEditor";
import { LineChart } from "../components/LineChart";
import { RequireRole } from "../components/RequireRole";
import { Time } from "../components/Time";
import { useApi } from "../lib/useApi";
import { usePageTitle } from "../lib/usePageTitle";
import { useSubmit } from "../lib/useSubmit";

type Device = Schemas["DeviceRead"];
type Window = Schemas["TelemetryPoint"];

const TELEMETRY_MINUTES = 60;
const NO_TELEMETRY = `No telemetry in the last ${TELEMETRY_MINUTES} minutes.`;

function Telemetry({ windows }: { windows: Window[] }) {
  const series = (name: string, value: (window: Window) => number | null) => ({
    name,
    points: windows.map((window) => ({ at: window.sent_at, value: value(window) })),
  });
  return (
    <div className="grid-2">
      <div className="card">
        <LineChart
          title="Inference latency"
          unit="ms"
          series={[series("p50", (w) => w.latency_p50_ms), series("p95", (w) => w.latency_p95_ms)]}
          empty={NO_TELEMETRY}
        />
      </div>
      <div className="card">
        <LineChart
          title="Flag rate"
          unit="%"
          series={[series("flagged", (w) => (w.flag_rate === null ? null : w.flag_rate * 100))]}
          empty={NO_TELEMETRY}
        />
      </div>
      <div className="card">
        <LineChart
          title="Outbox depth"
          unit="entries"
          series={[series("waiting", (w) => w.outbox_depth)]}
          empty={NO_TELEMETRY}
        />
      </div>
    </div>
  );
}

/** The outbox depth of the newest telemetry window, else of the last health report. */
function outboxDepth(device: Device, windows: Window[] | undefined): number | null {
  const reported = windows?.at(-1)?.outbox_depth;
  if (reported != null) {
    return reported;
  }
  const health = device.health.outbox_depth;
  return typeof health === "number" ? health : null;
}

function Labels({ device, onSaved }: { device: Device; onSaved: (device: Device) => void }) {
  const [rows, setRows] = useState<LabelRow[] | null>(null);
  const submission = useSubmit();

  if (rows === null) {
    return (
      <div className="labels-view">
        <LabelChips labels={device.labels} />
        <RequireRole role="operator">
          <button
            type="button"
            className="button-secondary"
            onClick={() => {
              submission.clear();
              setRows(rowsFromLabels(device.labels));
            }}
          >
            Edit labels
          </button>
        </RequireRole>
      </div>
    );
  }

  const save = () => {
    const parsed = labelsFromRows(rows);
    if ("problem" in parsed) {
      submission.refuse(parsed.problem);
      return;
    }
    void submission.run(async () => {
      const updated = await unwrap(
        api.PATCH("/api/v1/devices/{device_id}", {
          params: { path: { device_id: device.id } },
          body: { labels: parsed.labels },
        }),
      );
      setRows(null);
      onSaved(updated);
    });
  };

  return (
    <form
      className="stack"
      aria-label="Edit labels"
      onSubmit={(event) => {
        event.preventDefault();
        save();
      }}
    >
      {submission.error !== null && <ErrorBanner error={submission.error} />}
      {submission.problem !== null && <p className="field-problem">{submission.problem}</p>}
      <LabelEditor rows={rows} onChange={setRows} />
      <div className="actions">
        <button
          type="button"
          className="button-secondary"
          disabled={submission.pending}
          onClick={() => {
            setRows(null);
          }}
        >
          Cancel
        </button>
        <button type="submit" className="button-primary" disabled={submission.pending}>
          {submission.pending ? "Saving…" : "Save labels"}
        </button>
      </div>
    </form>
  );
}

export default function DevicePage() {
  const { deviceId = "" } = useParams();
  const [notice, setNotice] = useState<string | null>(null);
  const device = useApi(`device:${deviceId}`, (signal) =>
    unwrap(api.GET("/api/v1/devices/{device_id}", { params: { path: { device_id: deviceId } }, signal })),
  );
  const clusters = useApi("clusters", (signal) => unwrap(api.GET("/api/v1/clusters", { signal })));
  const telemetry = useApi(`device-telemetry:${deviceId}`, (signal) =>
    unwrap(
      api.GET("/api/v1/devices/{device_id}/telemetry", {
        params: { path: { device_id: deviceId }, query: { minutes: TELEMETRY_MINUTES } },
        signal,
      }),
    ),
  );
  usePageTitle(device.data?.name ?? "Device");

  if (device.data === undefined) {
    return (
      <section>
        <p>
          <Link to="/devices">← Devices</Link>
        </p>
        {device.error !== undefined ? (
          <ErrorBanner error={device.error} onRetry={device.error.status === 404 ? undefined : device.reload} />
        ) : (
          <Loading what="device" />
        )}
      </section>
    );
  }

  const current = device.data;
  const cluster = clusters.data?.items.find((item) => item.id === current.cluster_id);
  const revoke = async () => {
    await unwrap(api.POST("/api/v1/devices/{device_id}/revoke", { params: { path: { device_id: current.id } } }));
    setNotice(`${current.name} is revoked. It must enroll again to reconnect.`);
    device.reload();
  };

  return (
    <section>
      <p>
        <Link to="/devices">← Devices</Link>
      </p>
      <div className="page-head">
        <h1>
          {current.name} <StatusBadge status={current.status} />
        </h1>
        {current.status !== "revoked" && (
          <RequireRole role="operator">
            <ConfirmButton
              label="Revoke"
              title={`Revoke ${current.name}?`}
              confirmLabel="Revoke device"
              danger
              onConfirm={revoke}
            >
              <p>
                Its credentials stop working at once and it can no longer report or receive models. To bring it
                back, it must enroll again with a new enrollment token.
              </p>
            </ConfirmButton>
          </RequireRole>
        )}
      </div>
      {notice !== null && <Notice>{notice}</Notice>}
      {device.error !== undefined && <ErrorBanner error={device.error} onRetry={device.reload} />}

      <div className="grid-2">
        <div className="card">
          <h2>Details</h2>
          <dl className="details">
            <dt>Model version</dt>
            <dd>{current.model_version ?? <span className="muted">none reported</span>}</dd>
            <dt>Status</dt>
            <dd>
              <StatusBadge status={current.status} />
            </dd>
            <dt>Last seen</dt>
            <dd>
              <Time value={current.last_seen_at} />
            </dd>
            <dt>Outbox depth</dt>
            <dd data-testid="outbox-depth">
              {outboxDepth(current, telemetry.data?.items) ?? <span className="muted">not reported</span>}
            </dd>
            <dt>Cluster</dt>
            <dd>
              {current.cluster_id === null ? (
                <span className="muted">none</span>
              ) : (
                <Link to={`/devices?cluster_id=${current.cluster_id}`}>{cluster?.name ?? current.cluster_id}</Link>
              )}
            </dd>
            <dt>Agent version</dt>
            <dd>{current.agent_version ?? <span className="muted">unknown</span>}</dd>
            <dt>Enrolled</dt>
            <dd>
              <Time value={current.enrolled_at} />
            </dd>
            {current.revoked_at !== null && (
              <>
                <dt>Revoked</dt>
                <dd>
                  <Time value={current.revoked_at} />
                </dd>
              </>
            )}
            <dt>Device id</dt>
            <dd>
              <code>{current.id}</code>
            </dd>
          </dl>
        </div>
        <div className="card">
          <h2>Labels</h2>
          <Labels
            device={current}
            onSaved={(updated) => {
              setNotice(`Labels of ${updated.name} saved.`);
              device.reload();
            }}
          />
        </div>
      </div>

      <h2>Telemetry, last {TELEMETRY_MINUTES} minutes</h2>
      {telemetry.error !== undefined && <ErrorBanner error={telemetry.error} onRetry={telemetry.reload} />}
      {telemetry.data === undefined ? (
        telemetry.error === undefined && <Loading what="telemetry" />
      ) : (
        <Telemetry windows={telemetry.data.items} />
      )}

      <div className="card">
        <h2>Health</h2>
        <p className="muted small">As last reported by the agent.</p>
        {Object.keys(current.health).length === 0 ? (
          <p className="muted">The device has reported no health yet.</p>
        ) : (
          <pre className="json" data-testid="health">
            {JSON.stringify(current.health, null, 2)}
          </pre>
        )}
      </div>
    </section>
  );
}
