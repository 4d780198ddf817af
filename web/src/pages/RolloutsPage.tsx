/** Rollouts: every rollout, active ones first, with where each one is. */
import { useMemo, useState } from "react";
import { Link, useSearchParams } from "react-router";

import { api } from "../api/client";
import { unwrap } from "../api/errors";
import { RolloutStateBadge } from "../components/Badges";
import { Empty, ErrorBanner, Loading } from "../components/Feedback";
import { FilterSelect } from "../components/FilterSelect";
import { Pager } from "../components/Pager";
import { RequireRole } from "../components/RequireRole";
import { Time } from "../components/Time";
import { ROLLOUT_STATES, activeFirst, isActive, stateText, stepText, targetText } from "../lib/rollouts";
import { useApi } from "../lib/useApi";
import { usePageTitle } from "../lib/usePageTitle";
import { usePoll } from "../lib/usePoll";

const DEFAULT_LIMIT = 25;
const POLL_MS = 5000;

export default function RolloutsPage() {
  usePageTitle("Rollouts");
  const [params, setParams] = useSearchParams();
  const stateParam = params.get("state");
  const state = ROLLOUT_STATES.find((value) => value === stateParam);
  const limitParam = Number(params.get("limit"));
  const limit = [25, 50, 100].includes(limitParam) ? limitParam : DEFAULT_LIMIT;
  const listingKey = JSON.stringify({ state, limit });

  const [paging, setPaging] = useState<{ key: string; cursors: (string | undefined)[] }>({
    key: listingKey,
    cursors: [undefined],
  });
  const cursors = paging.key === listingKey ? paging.cursors : [undefined];
  const cursor = cursors[cursors.length - 1];

  const rollouts = useApi(
    `rollouts:${listingKey}@${cursor ?? ""}`,
    (signal) => unwrap(api.GET("/api/v1/rollouts", { params: { query: { state, limit, cursor } }, signal })),
    { keepPrevious: true },
  );
  const clusters = useApi("clusters", (signal) => unwrap(api.GET("/api/v1/clusters", { signal })));
  const clusterNames = useMemo(
    () => new Map((clusters.data?.items ?? []).map((cluster) => [cluster.id, cluster.name])),
    [clusters.data],
  );
  const anyActive = (rollouts.data?.items ?? []).some((rollout) => isActive(rollout.state));
  usePoll(rollouts.reload, POLL_MS, anyActive);

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
        <h1>Rollouts</h1>
        <RequireRole role="operator">
          <Link to="/rollouts/new" className="button-primary">
            Start rollout
          </Link>
        </RequireRole>
      </div>

      <form
        className="filters"
        aria-label="Filters"
        onSubmit={(event) => {
          event.preventDefault();
        }}
      >
        <FilterSelect
          label="State"
          className="filter filter-fixed"
          value={state ?? ""}
          options={ROLLOUT_STATES.map((value) => ({ value, label: stateText(value) }))}
          onChange={(value) => {
            setParam("state", value);
          }}
        />
      </form>

      {rollouts.error !== undefined && <ErrorBanner error={rollouts.error} onRetry={rollouts.reload} />}
      {rollouts.data === undefined ? (
        rollouts.error === undefined && <Loading what="rollouts" />
      ) : rollouts.data.items.length === 0 ? (
        <Empty>
          {state === undefined
            ? "No rollout has been started yet."
            : `No rollout is ${stateText(state)}.`}
        </Empty>
      ) : (
        <>
          <div className="table-wrap">
            <table className="table" aria-label="Rollouts">
              <thead>
                <tr>
                  <th>Model</th>
                  <th>State</th>
                  <th>Step</th>
                  <th>Target</th>
                  <th className="num">Cohort</th>
                  <th>Started</th>
                </tr>
              </thead>
              <tbody>
                {activeFirst(rollouts.data.items).map((rollout) => (
                  <tr key={rollout.id}>
                    <td>
                      <Link to={`/rollouts/${rollout.id}`}>{rollout.model_label}</Link>
                      {rollout.baseline_label !== null && (
                        <span className="muted small"> replacing {rollout.baseline_label}</span>
                      )}
                    </td>
                    <td>
                      <RolloutStateBadge state={rollout.state} />
                    </td>
                    <td className="nowrap" data-testid="rollout-step">
                      {stepText(rollout)}
                    </td>
                    <td className="truncate">{targetText(rollout.target, clusterNames)}</td>
                    <td className="num">
                      {rollout.cohort_size.toLocaleString()} / {rollout.target_size.toLocaleString()}
                    </td>
                    <td className="nowrap">
                      <Time value={rollout.created_at} relative />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <Pager
            page={cursors.length}
            hasNext={rollouts.data.next_cursor !== null}
            loading={rollouts.loading}
            limit={limit}
            onPrevious={() => {
              setPaging({ key: listingKey, cursors: cursors.slice(0, -1) });
            }}
            onNext={() => {
              const next = rollouts.data?.next_cursor;
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
