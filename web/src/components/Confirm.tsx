"use client";
import { useEffect, useRef, type ReactNode } from "react";

/** A modal asking to confirm a consequential action; Esc or Cancel closes it. */
export function Confirm({
  title,
  children,
  confirmLabel,
  confirmDisabled = false,
  onConfirm,
  onCancel,
}: {
  title: string;
  children: ReactNode;
  confirmLabel: string;
  /** Keep the confirm button off until the dialog's form is complete (e.g. a reason given). */
  confirmDisabled?: boolean;
  onConfirm: () => void;
  onCancel: () => void;
}) {
  const cancel = useRef<HTMLButtonElement>(null);
  useEffect(() => cancel.current?.focus(), []);
  return (
    <div className="overlay" role="dialog" aria-modal="true" aria-labelledby="confirm-title" onKeyDown={(e) => e.key === "Escape" && onCancel()}>
      <div className="card">
        <h2 id="confirm-title">{title}</h2>
        {children}
        <div className="actions">
          <button type="button" className="primary" onClick={onConfirm} disabled={confirmDisabled}>
            {confirmLabel}
          </button>
          <button type="button" ref={cancel} onClick={onCancel}>
            Cancel
          </button>
        </div>
      </div>
    </div>
  );
}
