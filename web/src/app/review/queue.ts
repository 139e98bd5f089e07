"use client";
// The reviewer's queue: the task on screen plus one leased ahead (its image preloaded), so that
// after a submit the next task is already there. Submits run in the background; a failed one is
// reported, never silently dropped. Leaving the page gives both leases back.
import { useCallback, useEffect, useRef, useState } from "react";
import { api, type LabelIn, type Lease } from "@/api/client";

export type QueueState =
  | { kind: "loading" }
  | { kind: "empty" }
  | { kind: "paused" }
  | { kind: "task"; lease: Lease };

function preload(lease: Lease | null): void {
  if (lease?.task.image_url) {
    const image = new Image();
    image.src = lease.task.image_url;
  }
}

export function useReviewQueue(enabled: boolean) {
  const [state, setState] = useState<QueueState>({ kind: "loading" });
  const [error, setError] = useState<{ what: string; error: unknown } | null>(null);
  const [done, setDone] = useState(0);
  const ahead = useRef<Promise<Lease | null> | null>(null);
  const held = useRef(new Set<number>());
  const started = useRef(false);

  const lease = useCallback(async (): Promise<Lease | null> => {
    const next = await api.leaseNext();
    if (next) held.current.add(next.task.id);
    return next;
  }, []);

  const prefetch = useCallback(() => {
    const promise = lease().catch(() => null);
    ahead.current = promise;
    void promise.then(preload);
  }, [lease]);

  /** Show the task leased ahead (or lease one now) and lease the one after it. */
  const advance = useCallback(async () => {
    const pending = ahead.current;
    ahead.current = null;
    let next: Lease | null = null;
    try {
      next = (pending ? await pending : null) ?? (await lease());
    } catch (e) {
      setError({ what: "Leasing the next task", error: e });
      setState({ kind: "empty" });
      return;
    }
    if (next === null) {
      setState({ kind: "empty" });
      return;
    }
    setState({ kind: "task", lease: next });
    prefetch();
  }, [lease, prefetch]);

  useEffect(() => {
    if (!enabled || started.current) return;
    started.current = true;
    void advance();
  }, [enabled, advance]);

  // Give every held lease back when the page goes away (keepalive lets the request finish).
  useEffect(() => {
    const giveBack = () => {
      for (const id of held.current) void api.release(id, true).catch(() => undefined);
      held.current.clear();
    };
    window.addEventListener("pagehide", giveBack);
    return () => {
      window.removeEventListener("pagehide", giveBack);
      giveBack();
    };
  }, []);

  const current = state.kind === "task" ? state.lease : null;

  const submit = useCallback(
    (labels: LabelIn[]) => {
      if (!current) return;
      const id = current.task.id;
      held.current.delete(id);
      void api.submit(id, labels).then(
        () => setDone((n) => n + 1),
        (e: unknown) => setError({ what: `Saving the labels of task ${id}`, error: e }),
      );
      setError(null);
      void advance();
    },
    [current, advance],
  );

  const skip = useCallback(
    async (reason: string) => {
      if (!current) return;
      const id = current.task.id;
      held.current.delete(id);
      try {
        await api.skip(id, reason);
      } catch (e) {
        setError({ what: `Skipping task ${id}`, error: e });
      }
      void advance();
    },
    [current, advance],
  );

  /** Give back the task on screen and the one ahead, and stop. */
  const release = useCallback(async () => {
    const pending = ahead.current;
    ahead.current = null;
    const ids = [...held.current];
    held.current.clear();
    setState({ kind: "paused" });
    await Promise.all(ids.map((id) => api.release(id).catch(() => undefined)));
    if (pending) {
      const late = await pending;
      if (late) await api.release(late.task.id).catch(() => undefined);
    }
  }, []);

  const resume = useCallback(() => {
    setState({ kind: "loading" });
    void advance();
  }, [advance]);

  return { state, error, done, submit, skip, release, resume, retry: resume };
}
