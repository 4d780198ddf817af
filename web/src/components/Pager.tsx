export const PAGE_SIZES = [25, 50, 100] as const;

interface Props {
  page: number;
  hasNext: boolean;
  loading: boolean;
  limit: number;
  onPrevious: () => void;
  onNext: () => void;
  onLimit: (limit: number) => void;
}

/** Previous / next over a cursor-paginated listing (the API gives no total, by design). */
export function Pager({ page, hasNext, loading, limit, onPrevious, onNext, onLimit }: Props) {
  return (
    <nav className="pager" aria-label="Pages">
      <button type="button" className="button-secondary" onClick={onPrevious} disabled={page === 1 || loading}>
        Previous
      </button>
      <span className="pager-page">Page {page}</span>
      <button type="button" className="button-secondary" onClick={onNext} disabled={!hasNext || loading}>
        Next
      </button>
      <label className="pager-size">
        Rows per page{" "}
        <select
          value={limit}
          onChange={(event) => {
            onLimit(Number(event.target.value));
          }}
        >
          {PAGE_SIZES.map((size) => (
            <option key={size} value={size}>
              {size}
            </option>
          ))}
        </select>
      </label>
    </nav>
  );
}
