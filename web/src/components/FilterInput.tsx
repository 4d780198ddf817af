import { useId, useRef, useState } from "react";

interface Props {
  label: string;
  value: string;
  onCommit: (value: string) => void;
  placeholder?: string;
  /** Values offered while typing (the input still accepts any text). */
  suggestions?: readonly string[];
  /** Returns why a value cannot be used, or null; an invalid value is not committed. */
  validate?: (value: string) => string | null;
  /** Called with the text as it is typed (to fetch suggestions for it). */
  onDraft?: (draft: string) => void;
  /** Why the last committed value could not be used, found after committing it. */
  problem?: string | null;
}

const DEBOUNCE_MS = 350;

/** A text filter that applies itself after a pause in typing, or at once on Enter. */
export function FilterInput({ label, value, onCommit, placeholder, suggestions, validate, onDraft, problem: found = null }: Props) {
  const [draft, setDraft] = useState(value);
  const [synced, setSynced] = useState(value);
  const timer = useRef<number | undefined>(undefined);
  const id = useId();
  // The URL changed under us (back button, "clear filters"): show what it says.
  if (value !== synced) {
    setSynced(value);
    setDraft(value);
  }
  const problem = validate?.(draft.trim()) ?? found;

  const commit = (next: string) => {
    window.clearTimeout(timer.current);
    const trimmed = next.trim();
    if ((validate?.(trimmed) ?? null) === null && trimmed !== value) {
      setSynced(trimmed);
      onCommit(trimmed);
    }
  };

  return (
    <div className="filter">
      <label htmlFor={id}>{label}</label>
      <input
        id={id}
        type="search"
        value={draft}
        placeholder={placeholder}
        list={suggestions === undefined ? undefined : `${id}-suggestions`}
        aria-invalid={problem !== null}
        aria-describedby={problem !== null ? `${id}-problem` : undefined}
        onChange={(event) => {
          const next = event.target.value;
          setDraft(next);
          onDraft?.(next.trim());
          window.clearTimeout(timer.current);
          timer.current = window.setTimeout(() => {
            commit(next);
          }, DEBOUNCE_MS);
        }}
        onKeyDown={(event) => {
          if (event.key === "Enter") {
            commit(draft);
          }
        }}
      />
      {suggestions !== undefined && (
        <datalist id={`${id}-suggestions`}>
          {suggestions.map((suggestion) => (
            <option key={suggestion} value={suggestion} />
          ))}
        </datalist>
      )}
      {problem !== null && (
        <span id={`${id}-problem`} className="field-problem small">
          {problem}
        </span>
      )}
    </div>
  );
}
