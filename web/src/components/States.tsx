"use client";
import type { ReactNode } from "react";
import { ApiError } from "@/api/client";
import { RelativeTime } from "./Time";

/** What failed and what to try; shown above the last good data, which stays visible. */
export function ErrorNote({ what, error }: { what: string; error: unknown }) {
  let hint = "Retrying on its own; reload the page if it persists.";
  let detail = error instanceof Error ? error.message : String(error);
  if (error instanceof ApiError) {
    detail = error.detail;
    if (error.status === 0) hint = "The server cannot be reached: is `visionloop serve` running?";
    else if (error.status === 403) hint = "Your role may not see this.";
    else if (error.status >= 500) hint = "The server failed; its log says why.";
  }
  return (
    <div role="alert" className="note note-error">
      <strong>⚠ {what} failed:</strong> {detail}. <span className="muted">{hint}</span>
    </div>
  );
}

/** A grey block the size of what will load (loading is a skeleton, not a spinner). */
export function Skeleton({ height = "1.2em", width = "100%" }: { height?: string; width?: string }) {
  return <span className="skeleton" style={{ height, width }} aria-hidden="true" />;
}

/** Table rows of skeleton cells while a table's data loads. */
export function SkeletonRows({ rows, cols }: { rows: number; cols: number }) {
  return Array.from({ length: rows }, (_, i) => (
    <tr key={i}>
      {Array.from({ length: cols }, (_, k) => (
        <td key={k}>
          <Skeleton />
        </td>
      ))}
    </tr>
  ));
}

/** "Newest" and "Older" buttons of a keyset-paginated list. */
export function Pager({
  cursor,
  next,
  onCursor,
}: {
  cursor: string | undefined;
  next: string | null | undefined;
  onCursor: (cursor: string | undefined) => void;
}) {
  return (
    <>
      {cursor && (
        <button type="button" onClick={() => onCursor(undefined)}>
          Newest
        </button>
      )}
      {next && (
        <button type="button" onClick={() => onCursor(next)}>
          Older
        </button>
      )}
    </>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return <p className="empty">{children}</p>;
}

/** "from GET /api/v1/devices · refreshed 3 s ago · every 5 s (paused while hidden)". */
export function Source({ paths, updatedAt, everyS }: { paths: string[]; updatedAt: number; everyS?: number }) {
  return (
    <p className="source">
      from {paths.map((p, i) => (
        <span key={p}>
          {i > 0 && ", "}
          <code>{p}</code>
        </span>
      ))}
      {" · "}
      {updatedAt ? <>refreshed <RelativeTime iso={new Date(updatedAt).toISOString()} /></> : "loading"}
      {everyS ? ` · every ${everyS} s, paused while the tab is hidden` : ""}
    </p>
  );
}
