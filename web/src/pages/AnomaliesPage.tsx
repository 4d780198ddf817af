/**
 * Anomalies: a live list with filters, and labelling (confirm fraud / false positive),
 * one by one or in bulk, from the mouse or the keyboard.
 *
 * "Live" polls the first page of the list endpoint every few seconds rather than reading
 * GET /anomalies/stream: EventSource cannot send the bearer token, and a fetch-streamed
 * event stream would only carry new events (not labels set by other operators), would
 * hold a connection open for good, and has no typed body in the generated client. A
 * poll of the typed list endpoint also refreshes labels and needs no reconnect logic;
 * the price is up to POLL_MS of delay. Polling pauses while the tab is hidden.
 */
import { useEffect, useMemo, useState } from "react";
import { Link, useSearchParams } from "react-router";

import { api, type Schemas } from "../api/client";
import { asApiError, unwrap, type ApiError } from "../api/errors";
import { useCan, useSession } from "../auth/session";
import { Empty, ErrorBanner, Loading, Notice } from "../components/Feedback";
import { DeviceFilter } from "../components/DeviceFilter";
import { FilterInput } from "../components/FilterInput";
import { FilterSelect } from "../components/FilterSelect";
import { RequireRole } from "../components/RequireRole";
import { Time } from "../components/Time";
import { modelVersions } from "../lib/fleet";
import { useApi } from "../lib/useApi";
import { usePageTitle } from "../lib/usePageTitle";

type Anomaly = Schemas["ScoredEventRead"];
type Label = NonNullable<Anomaly["label"]>;
type LabelFilter = Schemas["LabelFilter"];

const POLL_MS = 5000;
const PAGE_SIZE = 50;
const LABEL_FILTERS: LabelFilter[] = ["unlabelled", "confirmed_fraud", "false_positive"];
const LABEL_TEXT: Record<Label, string> = { confirmed_fraud: "fraud", false_positive: "false positive" };
const LABEL_OPTIONS = LABEL_FILTERS.map((value) => ({
  value,
  label: value === "unlabelled" ? "unlabelled" : LABEL_TEXT[value],
}));

interface Filters {
  device_id?: string;
  model_version?: string;
  min_score?: number;
  max_score?: number;
  label?: LabelFilter;
  since?: string;
  until?: string;
}

function filtersFrom(params: URLSearchParams): Filters {
  const filters: Filters = {};
  for (const key of ["device_id", "model_version", "since", "until"] as const) {
    const value = params.get(key);
    if (value !== null && value !== "") {
      filters[key] = value;
    }
  }
  for (const key of ["min_score", "max_score"] as const) {
    const value = params.get(key);
    if (value !== null && value !== "" && scoreProblem(value) === null) {
      filters[key] = Number(value);
    }
  }
  const label = params.get("label");
  if (label !== null && (LABEL_FILTERS as string[]).includes(label)) {
    filters.label = label as LabelFilter;
  }
  return filters;
}

function scoreProblem(value: string): string | null {
  if (value === "") {
    return null;
  }
  const number = Number(value);
  return Number.isFinite(number) && number >= 0 && number <= 1 ? null : "a score from 0 to 1";
}

/** A `datetime-local` value (the operator's zone) from an ISO instant, and back. */
function localInput(iso: string | undefined): string {
  if (iso === undefined) {
    return "";
  }
  const date = new Date(iso);
  const local = new Date(date.getTime() - date.getTimezoneOffset() * 60_000);
  return local.toISOString().slice(0, 16);
}

function isoFromLocal(value: string): string {
  return value === "" ? "" : new Date(value).toISOString();
}

interface Listing {
  key: string;
  events: Map<number, Anomaly>;
  /** The cursor of the next older page: undefined before the first answer, null at the end. */
  older: string | null | undefined;
  /** Ids above this one arrived while the page was open. */
  firstMax: number | null;
}

function emptyListing(key: string): Listing {
  return { key, events: new Map(), older: undefined, firstMax: null };
}

function merged(listing: Listing, items: Anomaly[], older?: string | null): Listing {
  const events = new Map(listing.events);
  for (const item of items) {
    events.set(item.id, item);
  }
  const firstMax = listing.firstMax ?? Math.max(0, ...items.map((item) => item.id));
  return { ...listing, events, older: older === undefined ? listing.older : older, firstMax };
}

/**
 * Drops shown events that the first page no longer returns (labelled by someone else
 * while a label filter is on): those at or above the page's oldest id, or all of them
 * when the page is the whole listing.
 */
function pruned(listing: Listing, items: Anomaly[], complete: boolean): Listing {
  const returned = new Set(items.map((item) => item.id));
  const floor = complete ? -Infinity : Math.min(...items.map((item) => item.id));
  const events = new Map([...listing.events].filter(([id]) => id < floor || returned.has(id)));
  return events.size === listing.events.size ? listing : { ...listing, events };
}

/** Whether a key press belongs to a field (a checkbox takes no letters, so it does not count). */
function isTyping(target: EventTarget | null): boolean {
  if (target instanceof HTMLInputElement) {
    return target.type !== "checkbox";
  }
  return target instanceof HTMLElement && (target.isContentEditable || ["SELECT", "TEXTAREA"].includes(target.tagName));
}

export default function AnomaliesPage() {
  usePageTitle("Anomalies");
  const [params, setParams] = useSearchParams();
  const filters = useMemo(() => filtersFrom(params), [params]);
  const listingKey = JSON.stringify(filters);
  const canLabel = useCan("operator");
  const { session } = useSession();

  const [live, setLive] = useState(true);
  const [generation, setGeneration] = useState(0);
  const [listing, setListing] = useState<Listing>(() => emptyListing(listingKey));
  const [loadError, setLoadError] = useState<{ key: string; error: ApiError } | null>(null);
  const [loadingOlder, setLoadingOlder] = useState(false);
  const [focusedId, setFocusedId] = useState<number | null>(null);
  const [selected, setSelected] = useState<ReadonlySet<number>>(new Set());
  const [busy, setBusy] = useState(false);
  const [actionError, setActionError] = useState<ApiError | null>(null);
  const [notice, setNotice] = useState<string | null>(null);

  const devices = useApi("devices-all", (signal) =>
    unwrap(api.GET("/api/v1/devices", { params: { query: { limit: 500 } }, signal })),
  );
  const summary = useApi("summary", (signal) => unwrap(api.GET("/api/v1/devices/summary", { signal })));
  const deviceNames = useMemo(
    () => new Map((devices.data?.items ?? []).map((device) => [device.id, device.name])),
    [devices.data],
  );

  // The first page, now and every POLL_MS while live; merged into what is shown.
  useEffect(() => {
    const controller = new AbortController();
    let timer: number | undefined;
    let first = true;
    const poll = async () => {
      // A hidden tab skips its polls, but always loads the list once.
      if (first || !document.hidden) {
        first = false;
        try {
          const page = await unwrap(
            api.GET("/api/v1/anomalies", {
              params: { query: { ...filters, limit: PAGE_SIZE } },
              signal: controller.signal,
            }),
          );
          setListing((current) => {
            const base = current.key === listingKey ? current : emptyListing(listingKey);
            return merged(
              pruned(base, page.items, page.next_cursor === null),
              page.items,
              base.older === undefined ? page.next_cursor : undefined,
            );
          });
          setLoadError(null);
        } catch (caught) {
          if (controller.signal.aborted) {
            return;
          }
          setLoadError({ key: listingKey, error: asApiError(caught) });
        }
      }
      if (live && !controller.signal.aborted) {
        timer = window.setTimeout(() => void poll(), POLL_MS);
      }
    };
    void poll();
    return () => {
      controller.abort();
      window.clearTimeout(timer);
    };
    // `filters` is named by `listingKey`.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [listingKey, live, generation]);

  const current = listing.key === listingKey ? listing : emptyListing(listingKey);
  const events = useMemo(() => [...current.events.values()].sort((a, b) => b.id - a.id), [current.events]);
  const error = loadError?.key === listingKey ? loadError.error : null;
  const loaded = current.older !== undefined;
  const visibleSelection = events.filter((event) => selected.has(event.id)).map((event) => event.id);
  const focused = events.find((event) => event.id === focusedId) ?? null;

  const loadOlder = async () => {
    const cursor = current.older;
    if (cursor == null) {
      return;
    }
    setLoadingOlder(true);
    try {
      const page = await unwrap(
        api.GET("/api/v1/anomalies", { params: { query: { ...filters, limit: PAGE_SIZE, cursor } } }),
      );
      setListing((latest) => (latest.key === listingKey ? merged(latest, page.items, page.next_cursor) : latest));
    } catch (caught) {
      setLoadError({ key: listingKey, error: asApiError(caught) });
    } finally {
      setLoadingOlder(false);
    }
  };

  const applyLabel = async (ids: number[], label: Label | null) => {
    if (ids.length === 0 || busy) {
      return;
    }
    setBusy(true);
    setActionError(null);
    setNotice(null);
    try {
      let updated: Anomaly[];
      const [only] = ids;
      if (ids.length === 1 && only !== undefined) {
        const event = await unwrap(
          api.PUT("/api/v1/anomalies/{anomaly_id}/label", {
            params: { path: { anomaly_id: only } },
            body: { label },
          }),
        );
        updated = [event];
      } else {
        const result = await unwrap(api.POST("/api/v1/anomalies/labels", { body: { ids, label } }));
        const missing = new Set(result.missing);
        const now = new Date().toISOString();
        updated = ids
          .filter((id) => !missing.has(id))
          .flatMap((id) => {
            const event = current.events.get(id);
            return event === undefined
              ? []
              : [
                  {
                    ...event,
                    label,
                    label_source: label === null ? null : ("operator" as const),
                    labelled_at: label === null ? null : now,
                    labelled_by: label === null ? null : (session?.username ?? null),
                  },
                ];
          });
      }
      setListing((latest) => (latest.key === listingKey ? merged(latest, updated) : latest));
      setSelected(new Set());
      const what = updated.length === 1 ? "1 anomaly" : `${updated.length} anomalies`;
      setNotice(label === null ? `Label cleared on ${what}.` : `${what} marked ${LABEL_TEXT[label]}.`);
    } catch (caught) {
      setActionError(asApiError(caught));
    } finally {
      setBusy(false);
    }
  };

  const toggle = (id: number) => {
    setSelected((previous) => {
      const next = new Set(previous);
      if (next.has(id)) {
        next.delete(id);
      } else {
        next.add(id);
      }
      return next;
    });
  };

  // Keyboard: j/k move, x selects, f = fraud, n = not fraud (the selection, or the focused row).
  useEffect(() => {
    const onKey = (event: KeyboardEvent) => {
      if (event.altKey || event.ctrlKey || event.metaKey || isTyping(event.target) || events.length === 0) {
        return;
      }
      const index = focused === null ? -1 : events.indexOf(focused);
      const move = (to: number) => {
        const target = events[Math.max(0, Math.min(events.length - 1, to))];
        if (target === undefined) {
          return;
        }
        setFocusedId(target.id);
        document.getElementById(`anomaly-${target.id}`)?.scrollIntoView({ block: "nearest" });
      };
      const targets = visibleSelection.length > 0 ? visibleSelection : focused === null ? [] : [focused.id];
      switch (event.key) {
        case "j":
          move(index + 1);
          break;
        case "k":
          move(index <= 0 ? 0 : index - 1);
          break;
        case "x":
          if (canLabel && focused !== null) {
            toggle(focused.id);
          }
          break;
        case "f":
          if (canLabel) {
            void applyLabel(targets, "confirmed_fraud");
          }
          break;
        case "n":
          if (canLabel) {
            void applyLabel(targets, "false_positive");
          }
          break;
        default:
          return;
      }
      event.preventDefault();
    };
    window.addEventListener("keydown", onKey);
    return () => {
      window.removeEventListener("keydown", onKey);
    };
  });

  const setFilter = (key: keyof Filters, value: string) => {
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
  const anyFilter = Object.keys(filters).length > 0;
  const allSelected = events.length > 0 && visibleSelection.length === events.length;

  return (
    <section>
      <div className="page-head">
        <h1>Anomalies</h1>
        <label className="inline">
          <input
            type="checkbox"
            checked={live}
            onChange={(event) => {
              setLive(event.target.checked);
            }}
          />
          Live (every {POLL_MS / 1000} s)
        </label>
      </div>

      <form
        className="filters"
        aria-label="Filters"
        onSubmit={(event) => {
          event.preventDefault();
        }}
      >
        <DeviceFilter
          deviceId={filters.device_id ?? ""}
          onChange={(value) => {
            setFilter("device_id", value);
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
        <FilterInput
          label="Score from"
          value={filters.min_score === undefined ? "" : String(filters.min_score)}
          placeholder="0.5"
          validate={scoreProblem}
          onCommit={(value) => {
            setFilter("min_score", value);
          }}
        />
        <FilterInput
          label="Score to"
          value={filters.max_score === undefined ? "" : String(filters.max_score)}
          placeholder="1"
          validate={scoreProblem}
          onCommit={(value) => {
            setFilter("max_score", value);
          }}
        />
        <FilterSelect
          label="Label"
          value={filters.label ?? ""}
          options={LABEL_OPTIONS}
          onChange={(value) => {
            setFilter("label", value);
          }}
        />
        <label className="filter">
          Scored from
          <input
            type="datetime-local"
            value={localInput(filters.since)}
            onChange={(event) => {
              setFilter("since", isoFromLocal(event.target.value));
            }}
          />
        </label>
        <label className="filter">
          Scored before
          <input
            type="datetime-local"
            value={localInput(filters.until)}
            onChange={(event) => {
              setFilter("until", isoFromLocal(event.target.value));
            }}
          />
        </label>
        {anyFilter && (
          <button
            type="button"
            className="button-link filter-clear"
            onClick={() => {
              setParams({}, { replace: true });
            }}
          >
            Clear filters
          </button>
        )}
      </form>

      <RequireRole role="operator">
        <div className="label-bar" aria-label="Labelling">
          <span className="muted small">
            Keys: <kbd>j</kbd>/<kbd>k</kbd> move, <kbd>x</kbd> select, <kbd>f</kbd> fraud, <kbd>n</kbd> not fraud
          </span>
          {visibleSelection.length > 0 && (
            <>
              <strong>{visibleSelection.length} selected</strong>
              <button
                type="button"
                className="button-danger"
                disabled={busy}
                onClick={() => void applyLabel(visibleSelection, "confirmed_fraud")}
              >
                Confirm fraud ({visibleSelection.length})
              </button>
              <button
                type="button"
                className="button-secondary"
                disabled={busy}
                onClick={() => void applyLabel(visibleSelection, "false_positive")}
              >
                False positive ({visibleSelection.length})
              </button>
            </>
          )}
        </div>
      </RequireRole>
      {notice !== null && <Notice>{notice}</Notice>}
      {actionError !== null && <ErrorBanner error={actionError} />}
      {error !== null && (
        <ErrorBanner
          error={error}
          onRetry={() => {
            setGeneration((value) => value + 1);
          }}
        />
      )}

      {!loaded ? (
        error === null && <Loading what="anomalies" />
      ) : events.length === 0 ? (
        <Empty>
          {anyFilter
            ? "No anomaly matches these filters."
            : "No anomaly yet. Devices report the transactions their model flags; they appear here as they arrive."}
        </Empty>
      ) : (
        <div className="table-wrap">
          <table className="table anomalies" aria-label="Anomalies">
            <thead>
              <tr>
                {canLabel && (
                  <th>
                    <input
                      type="checkbox"
                      aria-label="Select all"
                      checked={allSelected}
                      onChange={() => {
                        setSelected(allSelected ? new Set() : new Set(events.map((event) => event.id)));
                      }}
                    />
                  </th>
                )}
                <th>Scored</th>
                <th>Device</th>
                <th className="num">Score</th>
                <th className="hide-narrow">Model</th>
                <th className="num hide-narrow">Amount</th>
                <th className="hide-narrow">Transaction</th>
                <th>Label</th>
                {canLabel && <th>Actions</th>}
              </tr>
            </thead>
            <tbody>
              {events.map((event) => {
                const isNew = current.firstMax !== null && event.id > current.firstMax;
                const classes = [
                  event.id === focusedId ? "row-focused" : "",
                  selected.has(event.id) ? "row-selected" : "",
                  isNew ? "row-new" : "",
                ].join(" ");
                return (
                  <tr
                    key={event.id}
                    id={`anomaly-${event.id}`}
                    className={classes.trim()}
                    data-testid="anomaly-row"
                    aria-current={event.id === focusedId ? "true" : undefined}
                    onClick={() => {
                      setFocusedId(event.id);
                    }}
                  >
                    {canLabel && (
                      <td>
                        <input
                          type="checkbox"
                          aria-label={`Select anomaly ${event.id}`}
                          checked={selected.has(event.id)}
                          onChange={() => {
                            toggle(event.id);
                          }}
                        />
                      </td>
                    )}
                    <td className="nowrap">
                      <Time value={event.scored_at} />
                    </td>
                    <td>
                      <Link to={`/devices/${event.device_id}`}>
                        {deviceNames.get(event.device_id) ?? event.device_id.slice(0, 8)}
                      </Link>
                    </td>
                    <td className="num">
                      {event.score.toFixed(3)}
                      <span className="muted small"> / {event.threshold.toFixed(2)}</span>
                    </td>
                    <td className="hide-narrow">{event.model_version}</td>
                    <td className="num hide-narrow nowrap">
                      {event.transaction.amount.toFixed(2)} {event.transaction.currency}
                    </td>
                    <td className="hide-narrow truncate" title={event.transaction.transaction_id}>
                      {event.transaction.transaction_id}
                    </td>
                    <td className="nowrap">
                      {event.label === null ? (
                        <span className="muted">unlabelled</span>
                      ) : (
                        <span
                          className={`badge badge-${event.label}`}
                          title={`by ${event.labelled_by ?? event.label_source ?? "?"}`}
                        >
                          {LABEL_TEXT[event.label]}
                        </span>
                      )}
                    </td>
                    {canLabel && (
                      <td className="nowrap row-actions">
                        <button
                          type="button"
                          className="button-link"
                          disabled={busy || event.label === "confirmed_fraud"}
                          onClick={() => void applyLabel([event.id], "confirmed_fraud")}
                        >
                          Fraud
                        </button>
                        <button
                          type="button"
                          className="button-link"
                          disabled={busy || event.label === "false_positive"}
                          onClick={() => void applyLabel([event.id], "false_positive")}
                        >
                          Not fraud
                        </button>
                      </td>
                    )}
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
      {loaded && current.older !== null && events.length > 0 && (
        <div className="pager">
          <button type="button" className="button-secondary" disabled={loadingOlder} onClick={() => void loadOlder()}>
            {loadingOlder ? "Loading…" : "Load older"}
          </button>
        </div>
      )}
    </section>
  );
}
