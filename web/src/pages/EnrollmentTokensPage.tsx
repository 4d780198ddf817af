import { useState, type SubmitEvent } from "react";

import { api, type Schemas } from "../api/client";
import { unwrap } from "../api/errors";
import { LabelChips } from "../components/Badges";
import { ConfirmButton } from "../components/ConfirmButton";
import { CopyButton } from "../components/CopyButton";
import { Empty, ErrorBanner, Loading } from "../components/Feedback";
import { LabelEditor, labelsFromRows, type LabelRow } from "../components/LabelEditor";
import { Time } from "../components/Time";
import { useApi } from "../lib/useApi";
import { usePageTitle } from "../lib/usePageTitle";
import { useSubmit } from "../lib/useSubmit";

type Token = Schemas["EnrollmentTokenRead"];
type Created = Schemas["EnrollmentTokenCreated"];

function tokenState(token: Token): string {
  if (token.revoked_at !== null) {
    return "revoked";
  }
  if (token.used_at !== null) {
    return "used";
  }
  return Date.parse(token.expires_at) <= Date.now() ? "expired" : "active";
}

function CreatedToken({ created, onDone }: { created: Created; onDone: () => void }) {
  return (
    <div className="card created-token" role="status">
      <h2>Enrollment token created</h2>
      <p>
        Give this token to <strong>one</strong> device. It is shown only now and works once, until{" "}
        <Time value={created.expires_at} />.
      </p>
      <div className="secret-row">
        <input
          readOnly
          aria-label="Enrollment token"
          value={created.token}
          onFocus={(event) => {
            event.target.select();
          }}
          data-testid="new-token"
        />
        <CopyButton text={created.token} />
      </div>
      <button type="button" className="button-secondary" onClick={onDone}>
        Done
      </button>
    </div>
  );
}

function CreateToken({
  clusters,
  onCreated,
}: {
  clusters: Schemas["ClusterRead"][];
  onCreated: (created: Created) => void;
}) {
  const [description, setDescription] = useState("");
  const [clusterId, setClusterId] = useState("");
  const [hours, setHours] = useState("");
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
      const created = await unwrap(
        api.POST("/api/v1/enrollment-tokens", {
          body: {
            description: description.trim(),
            cluster_id: clusterId === "" ? null : clusterId,
            labels: parsed.labels,
            expires_in_hours: hours === "" ? null : Number(hours),
          },
        }),
      );
      setDescription("");
      setLabels([]);
      setHours("");
      onCreated(created);
    });
  };

  return (
    <form className="card stack form" aria-label="Create enrollment token" onSubmit={submit}>
      <h2>New enrollment token</h2>
      {submission.error !== null && <ErrorBanner error={submission.error} />}
      <div className="form-grid">
        <label>
          Description
          <input
            name="description"
            placeholder="store 17, till 3"
            value={description}
            onChange={(event) => {
              setDescription(event.target.value);
            }}
          />
        </label>
        <label>
          Cluster
          <select
            name="cluster_id"
            value={clusterId}
            onChange={(event) => {
              setClusterId(event.target.value);
            }}
          >
            <option value="">none</option>
            {clusters.map((cluster) => (
              <option key={cluster.id} value={cluster.id}>
                {cluster.name}
              </option>
            ))}
          </select>
        </label>
        <label>
          Expires in (hours)
          <input
            name="expires_in_hours"
            type="number"
            min={1}
            max={720}
            placeholder="server default"
            value={hours}
            onChange={(event) => {
              setHours(event.target.value);
            }}
          />
        </label>
      </div>
      <fieldset>
        <legend>Labels given to the device</legend>
        {submission.problem !== null && <p className="field-problem">{submission.problem}</p>}
        <LabelEditor rows={labels} onChange={setLabels} />
      </fieldset>
      <div className="actions">
        <button type="submit" className="button-primary" disabled={submission.pending}>
          {submission.pending ? "Creating…" : "Create token"}
        </button>
      </div>
    </form>
  );
}

export default function EnrollmentTokensPage() {
  usePageTitle("Enrollment tokens");
  const [includeUsed, setIncludeUsed] = useState(false);
  const [created, setCreated] = useState<Created | null>(null);
  const tokens = useApi(
    `tokens:${includeUsed}`,
    (signal) =>
      unwrap(api.GET("/api/v1/enrollment-tokens", { params: { query: { include_used: includeUsed } }, signal })),
    { keepPrevious: true },
  );
  const clusters = useApi("clusters", (signal) => unwrap(api.GET("/api/v1/clusters", { signal })));
  const clusterItems = clusters.data?.items ?? [];
  const clusterName = (id: string | null) =>
    id === null ? null : (clusterItems.find((cluster) => cluster.id === id)?.name ?? id.slice(0, 8));

  const revoke = async (token: Token) => {
    await unwrap(api.DELETE("/api/v1/enrollment-tokens/{token_id}", { params: { path: { token_id: token.id } } }));
    tokens.reload();
  };

  return (
    <section>
      <div className="page-head">
        <h1>Enrollment tokens</h1>
      </div>
      <p className="muted">A new device spends one enrollment token to receive its own credential.</p>
      {created !== null ? (
        <CreatedToken
          created={created}
          onDone={() => {
            setCreated(null);
          }}
        />
      ) : (
        <CreateToken
          clusters={clusterItems}
          onCreated={(token) => {
            setCreated(token);
            tokens.reload();
          }}
        />
      )}

      <div className="page-head">
        <h2>Tokens</h2>
        <label className="inline">
          <input
            type="checkbox"
            checked={includeUsed}
            onChange={(event) => {
              setIncludeUsed(event.target.checked);
            }}
          />{" "}
          Show used and revoked
        </label>
      </div>
      {tokens.error !== undefined && <ErrorBanner error={tokens.error} onRetry={tokens.reload} />}
      {tokens.data === undefined ? (
        tokens.error === undefined && <Loading what="enrollment tokens" />
      ) : tokens.data.items.length === 0 ? (
        <Empty>{includeUsed ? "No enrollment token has been created." : "No enrollment token is waiting to be used."}</Empty>
      ) : (
        <div className={`table-wrap${tokens.loading ? " is-loading" : ""}`}>
          <table className="table" aria-label="Enrollment tokens">
            <thead>
              <tr>
                <th>Token</th>
                <th>Description</th>
                <th className="hide-narrow">Cluster</th>
                <th className="hide-narrow">Labels</th>
                <th className="hide-narrow">Created by</th>
                <th>Expires</th>
                <th>State</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {tokens.data.items.map((token) => {
                const state = tokenState(token);
                return (
                  <tr key={token.id}>
                    <td>
                      <code>{token.display_prefix}…</code>
                    </td>
                    <td>{token.description || <span className="muted">—</span>}</td>
                    <td className="hide-narrow">{clusterName(token.cluster_id) ?? <span className="muted">none</span>}</td>
                    <td className="hide-narrow">
                      <LabelChips labels={token.labels} />
                    </td>
                    <td className="hide-narrow">{token.created_by}</td>
                    <td className="nowrap">
                      <Time value={token.expires_at} />
                    </td>
                    <td>
                      <span className={`badge badge-${state}`}>{state}</span>
                    </td>
                    <td>
                      {state === "active" && (
                        <ConfirmButton
                          label="Revoke"
                          title={`Revoke token ${token.display_prefix}…?`}
                          confirmLabel="Revoke token"
                          danger
                          onConfirm={() => revoke(token)}
                        >
                          <p>No device will be able to enroll with it afterwards.</p>
                        </ConfirmButton>
                      )}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
