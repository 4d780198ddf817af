import { useState } from "react";

import { api } from "../api/client";
import { unwrap } from "../api/errors";
import { useApi } from "../lib/useApi";
import { FilterInput } from "./FilterInput";

const SUGGESTIONS = 20;

interface Props {
  /** The chosen device's id, or "" for any device. */
  deviceId: string;
  onChange: (deviceId: string) => void;
}

/** A device chosen by name, with the names that start with what is typed as suggestions. */
export function DeviceFilter({ deviceId, onChange }: Props) {
  const [typed, setTyped] = useState("");
  const [problem, setProblem] = useState<string | null>(null);
  const search = (prefix: string, signal?: AbortSignal) =>
    unwrap(api.GET("/api/v1/devices", { params: { query: { name_prefix: prefix, limit: SUGGESTIONS } }, signal }));
  const chosen = useApi(`device-name:${deviceId}`, (signal) =>
    deviceId === ""
      ? Promise.resolve(null)
      : unwrap(api.GET("/api/v1/devices/{device_id}", { params: { path: { device_id: deviceId } }, signal })),
  );
  const matches = useApi(
    `device-suggestions:${typed}`,
    (signal) => (typed === "" ? Promise.resolve([]) : search(typed, signal).then((page) => page.items)),
    { keepPrevious: true },
  );

  const choose = async (name: string) => {
    setProblem(null);
    if (name === "") {
      onChange("");
      return;
    }
    const known = matches.data?.find((device) => device.name === name);
    const device = known ?? (await search(name)).items.find((item) => item.name === name);
    if (device === undefined) {
      setProblem(`no device is named ${name}`);
    } else {
      onChange(device.id);
    }
  };

  return (
    <FilterInput
      label="Device"
      value={deviceId === "" ? "" : (chosen.data?.name ?? "")}
      placeholder="pos-0001"
      suggestions={(matches.data ?? []).map((device) => device.name)}
      problem={problem}
      onDraft={(draft) => {
        setProblem(null);
        setTyped(draft);
      }}
      onCommit={(name) => {
        choose(name).catch(() => {
          setProblem("cannot look the device up; try again");
        });
      }}
    />
  );
}
