"use client";
import { useState, type ReactNode } from "react";

/** A secret (a device token, a temporary password) shown once, with a copy button and Done. */
export function SecretOnce({
  secret,
  testId,
  onDone,
  children,
}: {
  secret: string;
  testId: string;
  onDone: () => void;
  children: ReactNode;
}) {
  const [copied, setCopied] = useState(false);
  return (
    <div className="note token" role="status">
      <p>{children}</p>
      <p>
        <code data-testid={testId}>{secret}</code>{" "}
        <button
          type="button"
          onClick={() => void navigator.clipboard?.writeText(secret).then(() => setCopied(true), () => undefined)}
        >
          {copied ? "Copied" : "Copy"}
        </button>{" "}
        <button type="button" onClick={onDone}>
          Done
        </button>
      </p>
    </div>
  );
}
