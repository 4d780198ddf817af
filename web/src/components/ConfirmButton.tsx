import { useRef, useState, type ReactNode } from "react";

import { asApiError, type ApiError } from "../api/errors";
import { ErrorBanner } from "./Feedback";

interface Props {
  label: string;
  title: string;
  children: ReactNode;
  confirmLabel: string;
  onConfirm: () => Promise<void>;
  danger?: boolean;
  disabled?: boolean;
}

/** A button that asks first, in a modal dialog, and shows the API's answer if it fails. */
export function ConfirmButton({ label, title, children, confirmLabel, onConfirm, danger = false, disabled = false }: Props) {
  const dialog = useRef<HTMLDialogElement>(null);
  const [pending, setPending] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);

  const open = () => {
    setError(null);
    dialog.current?.showModal();
  };
  const close = () => {
    dialog.current?.close();
  };
  const confirm = async () => {
    setPending(true);
    setError(null);
    try {
      await onConfirm();
      close();
    } catch (caught) {
      setError(asApiError(caught));
    } finally {
      setPending(false);
    }
  };

  return (
    <>
      <button type="button" className={danger ? "button-danger" : "button-secondary"} onClick={open} disabled={disabled}>
        {label}
      </button>
      <dialog ref={dialog} className="dialog" aria-label={title}>
        <h2>{title}</h2>
        <div className="dialog-body">{children}</div>
        {error !== null && <ErrorBanner error={error} />}
        <div className="actions">
          <button type="button" className="button-secondary" onClick={close} disabled={pending}>
            Cancel
          </button>
          <button
            type="button"
            className={danger ? "button-danger" : "button-primary"}
            onClick={() => void confirm()}
            disabled={pending}
          >
            {pending ? "Working…" : confirmLabel}
          </button>
        </div>
      </dialog>
    </>
  );
}
