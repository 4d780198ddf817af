import { useRef, type ReactNode } from "react";

import { useSubmit } from "../lib/useSubmit";
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
  const submission = useSubmit();

  const open = () => {
    submission.clear();
    dialog.current?.showModal();
  };
  const close = () => {
    dialog.current?.close();
  };
  const confirm = () => {
    void submission.run(async () => {
      await onConfirm();
      close();
    });
  };

  return (
    <>
      <button type="button" className={danger ? "button-danger" : "button-secondary"} onClick={open} disabled={disabled}>
        {label}
      </button>
      <dialog ref={dialog} className="dialog" aria-label={title}>
        <h2>{title}</h2>
        <div className="dialog-body">{children}</div>
        {submission.error !== null && <ErrorBanner error={submission.error} />}
        <div className="actions">
          <button type="button" className="button-secondary" onClick={close} disabled={submission.pending}>
            Cancel
          </button>
          <button
            type="button"
            className={danger ? "button-danger" : "button-primary"}
            onClick={confirm}
            disabled={submission.pending}
          >
            {submission.pending ? "Working…" : confirmLabel}
          </button>
        </div>
      </dialog>
    </>
  );
}
