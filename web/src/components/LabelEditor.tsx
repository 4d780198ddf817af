import { useId } from "react";

export interface LabelRow {
  key: string;
  value: string;
}

export function rowsFromLabels(labels: Record<string, string>): LabelRow[] {
  return Object.entries(labels).map(([key, value]) => ({ key, value }));
}

/** The labels the rows describe, or a message saying which row is wrong. */
export function labelsFromRows(rows: LabelRow[]): { labels: Record<string, string> } | { problem: string } {
  const labels: Record<string, string> = {};
  for (const row of rows) {
    const key = row.key.trim();
    if (key === "" && row.value.trim() === "") {
      continue;
    }
    if (key === "") {
      return { problem: `the label with value "${row.value}" has no key` };
    }
    if (key in labels) {
      return { problem: `the label key "${key}" is given twice` };
    }
    labels[key] = row.value.trim();
  }
  return { labels };
}

/** Key/value rows; the server checks the key syntax and says what is wrong. */
export function LabelEditor({ rows, onChange }: { rows: LabelRow[]; onChange: (rows: LabelRow[]) => void }) {
  const id = useId();
  const update = (index: number, change: Partial<LabelRow>) => {
    onChange(rows.map((row, i) => (i === index ? { ...row, ...change } : row)));
  };
  return (
    <div className="label-editor">
      {rows.map((row, index) => (
        <div className="label-row" key={index}>
          <input
            aria-label={`Label ${index + 1} key`}
            id={`${id}-key-${index}`}
            placeholder="key"
            value={row.key}
            onChange={(event) => {
              update(index, { key: event.target.value });
            }}
          />
          <span aria-hidden="true">=</span>
          <input
            aria-label={`Label ${index + 1} value`}
            placeholder="value"
            value={row.value}
            onChange={(event) => {
              update(index, { value: event.target.value });
            }}
          />
          <button
            type="button"
            className="button-link"
            aria-label={`Remove label ${index + 1}`}
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
          onChange([...rows, { key: "", value: "" }]);
        }}
      >
        Add label
      </button>
    </div>
  );
}
