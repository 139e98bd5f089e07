"use client";
import { useEffect, useState } from "react";
import { relative, utc } from "@/lib/format";

/** A time shown relative ("3 min ago"), absolute UTC on hover; re-renders every 5 s. */
export function RelativeTime({ iso, empty = "never" }: { iso: string | null | undefined; empty?: string }) {
  const now = useNow(5000);
  if (!iso) return <span className="muted">{empty}</span>;
  return (
    <time dateTime={iso} title={utc(iso)}>
      {relative(iso, now)}
    </time>
  );
}

export function useNow(everyMs: number): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const id = window.setInterval(() => setNow(Date.now()), everyMs);
    return () => window.clearInterval(id);
  }, [everyMs]);
  return now;
}
