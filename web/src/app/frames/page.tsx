"use client";
import { keepPreviousData, useMutation, useQuery } from "@tanstack/react-query";
import { useRouter, useSearchParams } from "next/navigation";
import { Suspense, useState, type FormEvent } from "react";
import { api, mayAct, type FrameFilter } from "@/api/client";
import { FrameImage } from "@/components/FrameImage";
import { useUser } from "@/components/Session";
import { Empty, ErrorNote, Pager, Skeleton, SkeletonRows, Source } from "@/components/States";
import { RelativeTime } from "@/components/Time";
import { count, utc } from "@/lib/format";

const FILTER_KEYS = ["device_id", "class_name", "min_confidence", "max_confidence", "sampled"] as const;
const EVERY_S = 15;

function FramePanel({ id, reviewer }: { id: string; reviewer: boolean }) {
  const frame = useQuery({ queryKey: ["frame", id], queryFn: () => api.frame(id) });
  const [note, setNote] = useState("");
  const send = useMutation({ mutationFn: () => api.sendToReview(id, note.trim() || null) });
  const f = frame.data;
  return (
    <section className="card frame-panel" aria-labelledby="frame-title">
      <h2 id="frame-title">
        Frame <code>{id.slice(0, 8)}</code>
      </h2>
      {frame.isError && <ErrorNote what="Loading the frame" error={frame.error} />}
      {!f ? (
        !frame.isError && <Skeleton height="40vh" />
      ) : (
        <div className="frame-detail">
          <FrameImage frame={f} />
          <div>
            <p className="muted small">
              captured <span title={utc(f.captured_at)}>{utc(f.captured_at)}</span> · model {f.model_version} · {f.width}×{f.height} px
              {f.sample_reason && <> · sampled: {f.sample_reason}</>}
            </p>
            {f.detections.length === 0 ? (
              <Empty>The model found nothing on this frame.</Empty>
            ) : (
              <ul className="box-list">
                {f.detections.map((d, i) => (
                  <li key={i}>
                    {d.class_name} <span className="muted">{d.confidence.toFixed(3)}</span>
                  </li>
                ))}
              </ul>
            )}
            {reviewer && f.has_image && (
              <form
                className="inline-form"
                onSubmit={(event: FormEvent) => {
                  event.preventDefault();
                  send.mutate();
                }}
              >
                <label>
                  Why it needs review (optional) <input value={note} onChange={(e) => setNote(e.target.value)} maxLength={2000} />
                </label>
                <button type="submit" className="primary" disabled={send.isPending || send.isSuccess}>
                  Send to review
                </button>
              </form>
            )}
            {send.isSuccess && (
              <p className="note" role="status" data-testid="sent">
                ✓ In the review queue as task {send.data.id} ({send.data.reason}, {send.data.status})
                {send.data.reason === "manual" ? ": reviewers get it before the automatic tasks." : ": it was already queued."}
              </p>
            )}
            {send.isError && <ErrorNote what="Sending to review" error={send.error} />}
          </div>
        </div>
      )}
    </section>
  );
}

function Frames() {
  const params = useSearchParams();
  const router = useRouter();
  const user = useUser();
  const filter: FrameFilter = {};
  for (const key of FILTER_KEYS) filter[key] = params.get(key) ?? undefined;
  const selected = params.get("frame");
  const [cursor, setCursor] = useState<string | undefined>(undefined);
  const devices = useQuery({ queryKey: ["devices"], queryFn: api.devices });
  const classes = useQuery({ queryKey: ["classes"], queryFn: api.classes });
  const frames = useQuery({
    queryKey: ["frames", filter, cursor],
    queryFn: () => api.frames({ ...filter, cursor }),
    refetchInterval: EVERY_S * 1000,
    placeholderData: keepPreviousData,
  });
  const deviceName = new Map((devices.data ?? []).map((d) => [d.id, d.name]));

  function go(values: Record<string, string | undefined>) {
    const query = new URLSearchParams();
    for (const key of [...FILTER_KEYS, "frame"]) {
      const value = key in values ? values[key] : (params.get(key) ?? undefined);
      if (value) query.set(key, value);
    }
    router.replace(`/frames/${query.size ? `?${query.toString()}` : ""}`);
  }

  function onFilter(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    const values: Record<string, string | undefined> = { frame: undefined };
    for (const key of FILTER_KEYS) values[key] = String(form.get(key) ?? "") || undefined;
    setCursor(undefined);
    go(values);
  }

  const items = frames.data?.items;
  return (
    <>
      <div className="page-head">
        <h1>Frames</h1>
      </div>
      <Source paths={["/api/v1/frames"]} updatedAt={frames.dataUpdatedAt} everyS={EVERY_S} />
      <form className="filters" onSubmit={onFilter} key={params.toString()} aria-label="Filters">
        <label>
          Device{" "}
          <select name="device_id" defaultValue={filter.device_id ?? ""}>
            <option value="">all</option>
            {(devices.data ?? []).map((d) => (
              <option key={d.id} value={d.id}>
                {d.name}
              </option>
            ))}
          </select>
        </label>
        <label>
          Class{" "}
          <select name="class_name" defaultValue={filter.class_name ?? ""}>
            <option value="">any</option>
            {(classes.data ?? []).map((c) => (
              <option key={c.id} value={c.name}>
                {c.name}
              </option>
            ))}
          </select>
        </label>
        <label>
          Confidence from <input name="min_confidence" type="number" min={0} max={1} step={0.05} defaultValue={filter.min_confidence} size={4} />
        </label>
        <label>
          to <input name="max_confidence" type="number" min={0} max={1} step={0.05} defaultValue={filter.max_confidence} size={4} />
        </label>
        <label>
          <input name="sampled" type="checkbox" value="true" defaultChecked={filter.sampled === "true"} /> sampled only
        </label>
        <button type="submit">Apply</button>
        <Pager cursor={cursor} next={frames.data?.next_cursor} onCursor={setCursor} />
      </form>
      {frames.isError && <ErrorNote what="Loading frames" error={frames.error} />}
      {selected && <FramePanel key={selected} id={selected} reviewer={mayAct(user, "reviewer")} />}
      <div className="table-wrap">
        <table className="data" aria-label="Frames">
          <thead>
            <tr>
              <th scope="col">Captured</th>
              <th scope="col">Device</th>
              <th scope="col">Model</th>
              <th scope="col" className="num">Detections</th>
              <th scope="col" className="num">Top confidence</th>
              <th scope="col">Sampled</th>
              <th scope="col">Image</th>
            </tr>
          </thead>
          <tbody>
            {items === undefined
              ? <SkeletonRows rows={3} cols={7} />
              : items.map((f) => (
                  <tr
                    key={f.id}
                    className="clickable"
                    tabIndex={0}
                    aria-selected={f.id === selected}
                    onClick={() => go({ frame: f.id })}
                    onKeyDown={(e) => e.key === "Enter" && go({ frame: f.id })}
                    data-testid="frame-row"
                  >
                    <td>
                      <RelativeTime iso={f.captured_at} />
                    </td>
                    <td>{deviceName.get(f.device_id) ?? `#${f.device_id}`}</td>
                    <td>{f.model_version}</td>
                    <td className="num">{count(f.detection_count)}</td>
                    <td className="num">{f.max_confidence === null ? "–" : f.max_confidence.toFixed(3)}</td>
                    <td>{f.sample_reason ?? "–"}</td>
                    <td>{f.has_image ? "yes" : "no"}</td>
                  </tr>
                ))}
          </tbody>
        </table>
        {items !== undefined && items.length === 0 && <Empty>No frames match these filters.</Empty>}
      </div>
    </>
  );
}

export default function FramesPage() {
  return (
    <Suspense fallback={<Skeleton height="40vh" />}>
      <Frames />
    </Suspense>
  );
}
