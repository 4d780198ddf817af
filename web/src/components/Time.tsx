import { formatDateTime, formatRelative } from "../lib/format";

/** A moment in the operator's time zone; the relative form shows the absolute one on hover. */
export function Time({ value, relative = false }: { value: string | null | undefined; relative?: boolean }) {
  if (value == null) {
    return <span className="muted">never</span>;
  }
  const absolute = formatDateTime(value);
  return (
    <time dateTime={value} title={absolute}>
      {relative ? formatRelative(value) : absolute}
    </time>
  );
}
