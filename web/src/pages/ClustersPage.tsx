import { useState, type SubmitEvent } from "react";
import { Link } from "react-router";

import { api, type Schemas } from "../api/client";
import { unwrap } from "../api/errors";
import { LabelChips, StatusBadge } from "../components/Badges";
import { Empty, ErrorBanner, Loading, Notice } from "../components/Feedback";
import { LabelEditor, labelsFromRows, type LabelRow } from "../components/LabelEditor";
import { RequireRole } from "../components/RequireRole";
import { Time } from "../components/Time";
import { useApi } from "../lib/useApi";
import { usePageTitle } from "../lib/usePageTitle";
import { useSubmit } from "../lib/useSubmit";

type ClusterKind = Schemas["ClusterKind"];

// A Record over the generated union: adding a kind to the API fails the type check here.
const KINDS: Record<ClusterKind, string> = {
  "k3s-edge": "K3s edge",
  eks: "Amazon EKS",
  aks: "Azure AKS",
};

function RegisterCluster({
  onRegistered,
  onCancel,
}: {
  onRegistered: (cluster: Schemas["ClusterRead"]) => void;
  onCancel: () => void;
}) {
  const [name, setName] = useState("");
  const [kind, setKind] = useState<ClusterKind>("k3s-edge");
  const [region, setRegion] = useState("");
  const [apiServerUrl, setApiServerUrl] = useState("");
  const [kubeconfig, setKubeconfig] = useState("");
  const [labels, setLabels] = useState<LabelRow[]>([]);
  const submission = useSubmit();

  const submit = (event: SubmitEvent) => {
    event.preventDefault();
    const parsed = labelsFromRows(labels);
    if ("problem" in parsed) {
      submission.refuse(parsed.problem);
      return;
    }
    void submission.run(async () => {
      const cluster = await unwrap(
        api.POST("/api/v1/clusters", {
          body: {
            name: name.trim(),
            kind,
            region: region.trim(),
            labels: parsed.labels,
            api_server_url: apiServerUrl.trim() === "" ? null : apiServerUrl.trim(),
            kubeconfig: kubeconfig.trim() === "" ? null : kubeconfig,
          },
        }),
      );
      onRegistered(cluster);
    });
  };

  return (
    <form className="card stack form" aria-label="Register cluster" onSubmit={submit}>
      <h2>Register a cluster</h2>
      {submission.error !== null && <ErrorBanner error={submission.error} />}
      <div className="form-grid">
        <label>
          Name
          <input
            name="name"
            required
            placeholder="store-eu-west-1"
            value={name}
            onChange={(event) => {
              setName(event.target.value);
            }}
          />
          <span className="hint small">Lower-case letters, digits and dashes; unique.</span>
        </label>
        <label>
          Kind
          <select
            name="kind"
            value={kind}
            onChange={(event) => {
              setKind(event.target.value as ClusterKind);
            }}
          >
            {Object.entries(KINDS).map(([value, label]) => (
              <option key={value} value={value}>
                {label}
              </option>
            ))}
          </select>
        </label>
        <label>
          Region
          <input
            name="region"
            placeholder="eu-west-1"
            value={region}
            onChange={(event) => {
              setRegion(event.target.value);
            }}
          />
        </label>
        <label>
          API server URL
          <input
            name="api_server_url"
            type="url"
            placeholder="https://k3s.store-17.example:6443"
            value={apiServerUrl}
            onChange={(event) => {
              setApiServerUrl(event.target.value);
            }}
          />
        </label>
      </div>
      <label>
        Kubeconfig <span className="muted small">(optional; stored encrypted, never shown again)</span>
        <textarea
          name="kubeconfig"
          rows={4}
          value={kubeconfig}
          onChange={(event) => {
            setKubeconfig(event.target.value);
          }}
        />
      </label>
      <fieldset>
        <legend>Labels</legend>
        {submission.problem !== null && <p className="field-problem">{submission.problem}</p>}
        <LabelEditor rows={labels} onChange={setLabels} />
      </fieldset>
      <div className="actions">
        <button type="button" className="button-secondary" onClick={onCancel} disabled={submission.pending}>
          Cancel
        </button>
        <button type="submit" className="button-primary" disabled={submission.pending}>
          {submission.pending ? "Registering…" : "Register"}
        </button>
      </div>
    </form>
  );
}

export default function ClustersPage() {
  usePageTitle("Clusters");
  const clusters = useApi("clusters", (signal) => unwrap(api.GET("/api/v1/clusters", { signal })));
  const [notice, setNotice] = useState<string | null>(null);
  const [registering, setRegistering] = useState(false);

  return (
    <section>
      <div className="page-head">
        <h1>Clusters</h1>
        {!registering && (
          <RequireRole role="operator">
            <button
              type="button"
              className="button-primary"
              onClick={() => {
                setNotice(null);
                setRegistering(true);
              }}
            >
              Register cluster
            </button>
          </RequireRole>
        )}
      </div>
      {registering && (
        <RequireRole role="operator">
          <RegisterCluster
            onCancel={() => {
              setRegistering(false);
            }}
            onRegistered={(cluster) => {
              setRegistering(false);
              setNotice(`Cluster ${cluster.name} registered.`);
              clusters.reload();
            }}
          />
        </RequireRole>
      )}
      {notice !== null && <Notice>{notice}</Notice>}
      {clusters.error !== undefined && <ErrorBanner error={clusters.error} onRetry={clusters.reload} />}
      {clusters.data === undefined ? (
        clusters.error === undefined && <Loading what="clusters" />
      ) : clusters.data.items.length === 0 ? (
        <Empty>No cluster is registered yet.</Empty>
      ) : (
        <div className="table-wrap">
          <table className="table" aria-label="Clusters">
            <thead>
              <tr>
                <th>Name</th>
                <th>Kind</th>
                <th>Region</th>
                <th>Status</th>
                <th className="hide-narrow">Labels</th>
                <th className="hide-narrow">Kubeconfig</th>
                <th>Registered</th>
              </tr>
            </thead>
            <tbody>
              {clusters.data.items.map((cluster) => (
                <tr key={cluster.id}>
                  <td>
                    <Link to={`/devices?cluster_id=${cluster.id}`} title="Devices in this cluster">
                      {cluster.name}
                    </Link>
                  </td>
                  <td>{KINDS[cluster.kind]}</td>
                  <td>{cluster.region || <span className="muted">—</span>}</td>
                  <td>
                    <StatusBadge status={cluster.status} />
                  </td>
                  <td className="hide-narrow">
                    <LabelChips labels={cluster.labels} />
                  </td>
                  <td className="hide-narrow">{cluster.has_kubeconfig ? "stored" : <span className="muted">none</span>}</td>
                  <td className="nowrap">
                    <Time value={cluster.created_at} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
