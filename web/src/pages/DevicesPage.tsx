import { useMemo, useState } from "react";
import { Link, useSearchParams } from "react-router";

import { api, type Schemas } from "../api/client";
import { unwrap } from "../api/errors";
import { LabelChips, StatusBadge } from "../components/Badges";
import { Empty, ErrorBanner, Loading } from "../components/Feedback";
import { FilterInput } from "../components/FilterInput";
import { FilterSelect, plainOptions } from "../components/FilterSelect";
import { PAGE_SIZES, Pager } from "../components/Pager";
import { Time } from "../components/Time";
import { modelVersions } from "../lib/fleet";
import { useApi } from "../lib/useApi";
import { usePageTitle } from "../lib/usePageTitle";

type DeviceStatus = Schemas["DeviceStatus"];
const STATUSES: DeviceStatus[] = ["online", "offline", "revoked"];
const DEFAULT_LIMIT = 50;

interface Filters {
  name_prefix?: string;
  status?: DeviceStatus;
  model_version?: string;
  cluster_id?: string;
  label?: string;
}

function filtersFrom(params: URLSearchParams): Filters {
  const filters: Filters = {};
  const text = (key: "name_prefix" | "model_version" | "cluster_id" | "label") => {
    const value = params.get(key);
    if (value !== null && value !== "") {
      filters[key] = value;
    }
  };
  text("name_prefix");
  text("model_version");
  text("cluster_id");
  text("label");
  const status = params.get("status");
  if (status !== null && (STATUSES as string[]).includes(status)) {
    filters.status = status as DeviceStatus;
  }
  return filters;
}

function limitFrom(params: URLSearchParams): number {
  const limit = Number(params.get("limit"));
  return (PAGE_SIZES as readonly number[]).includes(limit) ? limit : DEFAULT_LIMIT;
}

function labelProblem(value: string): string | null {
  if (value === "") {
    return null;
  }
  const at = value.indexOf("=");
  return at <= 0 ? "write the label as key=value" : null;
}

export default function DevicesPage() {
  usePageTitle("Devices");
  const [params, setParams] = useSearchParams();
  const filters = useMemo(() => filtersFrom(params), [params]);
  const limit = limitFrom(params);
  const listingKey = JSON.stringify({ ...filters, limit });

  // Cursors of the pages visited so far under these filters: [first page, second, ...].
  const [paging, setPaging] = useState<{ key: string; cursors: (string | undefined)[] }>({
    key: listingKey,
    cursors: [undefined],
  });
  const cursors = paging.key === listingKey ? paging.cursors : [undefined];
  const cursor = cursors[cursors.length - 1];

  const devices = useApi(
    `${listingKey}@${cursor ?? ""}`,
    (signal) =>
      unwrap(api.GET("/api/v1/devices", { params: { query: { ...filters, limit, cursor } }, signal })),
    { keepPrevious: true },
  );
  const clusters = useApi("clusters", (signal) => unwrap(api.GET("/api/v1/clusters", { signal })));
  const summary = useApi("summary", (signal) => unwrap(api.GET("/api/v1/devices/summary", { signal })));

  const clusterNames = useMemo(
    () => new Map((clusters.data?.items ?? []).map((cluster) => [cluster.id, cluster.name])),
    [clusters.data],
  );

  const setFilter = (key: keyof Filters | "limit", value: string) => {
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
  const anyFilter = Object.keys(filters).length > 0;
  const page = devices.data === undefined ? 1 : cursors.length;

  return (
    <section>
      <div className="page-head">
        <h1>Devices</h1>
        {summary.data !== undefined && (
          <span className="muted">{summary.data.total.toLocaleString()} in the fleet</span>
        )}
      </div>

      <form
        className="filters"
        aria-label="Filters"
        onSubmit={(event) => {
          event.preventDefault();
        }}
      >
        <FilterInput
          label="Name starts with"
          value={filters.name_prefix ?? ""}
          placeholder="pos-"
          onCommit={(value) => {
            setFilter("name_prefix", value);
          }}
        />
        <FilterSelect
          label="Status"
          value={filters.status ?? ""}
          options={plainOptions(STATUSES)}
          onChange={(value) => {
            setFilter("status", value);
          }}
        />
        <FilterInput
          label="Model version"
          value={filters.model_version ?? ""}
          suggestions={modelVersions(summary.data)}
          onCommit={(value) => {
            setFilter("model_version", value);
          }}
        />
        <FilterSelect
          label="Cluster"
          value={filters.cluster_id ?? ""}
          options={(clusters.data?.items ?? []).map((cluster) => ({ value: cluster.id, label: cluster.name }))}
          onChange={(value) => {
            setFilter("cluster_id", value);
          }}
        />
        <FilterInput
          label="Label"
          value={filters.label ?? ""}
          placeholder="key=value"
          validate={labelProblem}
          onCommit={(value) => {
            setFilter("label", value);
          }}
        />
        {anyFilter && (
          <button
            type="button"
            className="button-link filter-clear"
            onClick={() => {
              setParams(limit === DEFAULT_LIMIT ? {} : { limit: String(limit) }, { replace: true });
            }}
          >
            Clear filters
          </button>
        )}
      </form>

      {devices.error !== undefined && <ErrorBanner error={devices.error} onRetry={devices.reload} />}
      {devices.data === undefined ? (
        devices.error === undefined && <Loading what="devices" />
      ) : devices.data.items.length === 0 && !devices.loading ? (
        <Empty>
          {anyFilter ? "No device matches these filters." : "No device has enrolled yet. Create an enrollment token to add one."}
        </Empty>
      ) : (
        <div className={`table-wrap${devices.loading ? " is-loading" : ""}`} aria-busy={devices.loading}>
          <table className="table" aria-label="Devices">
            <thead>
              <tr>
                <th>Name</th>
                <th>Status</th>
                <th>Model</th>
                <th>Cluster</th>
                <th className="hide-narrow">Labels</th>
                <th>Last seen</th>
              </tr>
            </thead>
            <tbody>
              {devices.data.items.map((device) => (
                <tr key={device.id}>
                  <td>
                    <Link to={`/devices/${device.id}`}>{device.name}</Link>
                  </td>
                  <td>
                    <StatusBadge status={device.status} />
                  </td>
                  <td>{device.model_version ?? <span className="muted">none</span>}</td>
                  <td>
                    {device.cluster_id === null ? (
                      <span className="muted">none</span>
                    ) : (
                      (clusterNames.get(device.cluster_id) ?? device.cluster_id.slice(0, 8))
                    )}
                  </td>
                  <td className="hide-narrow">
                    <LabelChips labels={device.labels} />
                  </td>
                  <td className="nowrap">
                    <Time value={device.last_seen_at} relative />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {devices.data !== undefined && (
        <Pager
          page={page}
          hasNext={devices.data.next_cursor !== null}
          loading={devices.loading}
          limit={limit}
          onPrevious={() => {
            setPaging({ key: listingKey, cursors: cursors.slice(0, -1) });
          }}
          onNext={() => {
            const next = devices.data?.next_cursor;
            if (next != null) {
              setPaging({ key: listingKey, cursors: [...cursors, next] });
            }
          }}
          onLimit={(value) => {
            setFilter("limit", value === DEFAULT_LIMIT ? "" : String(value));
          }}
        />
      )}
    </section>
  );
}
