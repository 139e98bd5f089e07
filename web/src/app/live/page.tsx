"use client";
import { useQuery } from "@tanstack/react-query";
import Link from "next/link";
import { useRouter, useSearchParams } from "next/navigation";
import { Suspense } from "react";
import { api, type Frame } from "@/api/client";
import { FrameImage } from "@/components/FrameImage";
import { Empty, ErrorNote, Skeleton, Source } from "@/components/States";
import { RelativeTime } from "@/components/Time";

const EVERY_S = 5;
const SHOWN = 12;

/** One sampled frame with its boxes; a frame never changes, so its detail is fetched once. */
function LiveTile({ frame, device }: { frame: Frame; device: string }) {
  const detail = useQuery({ queryKey: ["frame", frame.id], queryFn: () => api.frame(frame.id), staleTime: Infinity });
  return (
    <Link href={`/frames/?frame=${frame.id}`} className="live-tile" data-testid="live-tile">
      {detail.data ? <FrameImage frame={detail.data} /> : <Skeleton height="150px" />}
      <span className="live-caption small">
        {device} · <RelativeTime iso={frame.captured_at} /> · {frame.sample_reason ?? "sampled"}
        {frame.max_confidence !== null && <> · top {frame.max_confidence.toFixed(2)}</>}
      </span>
    </Link>
  );
}

function Live() {
  const params = useSearchParams();
  const router = useRouter();
  const deviceId = params.get("device_id") ?? undefined;
  const devices = useQuery({ queryKey: ["devices"], queryFn: api.devices });
  const frames = useQuery({
    queryKey: ["live", deviceId],
    queryFn: () => api.frames({ device_id: deviceId, sampled: "true" }),
    refetchInterval: EVERY_S * 1000,
  });
  const names = new Map((devices.data ?? []).map((d) => [d.id, d.name]));
  const items = frames.data?.items.filter((f) => f.has_image).slice(0, SHOWN);
  return (
    <>
      <div className="page-head">
        <h1>Live</h1>
        <label className="window">
          Device{" "}
          <select value={deviceId ?? ""} onChange={(e) => router.replace(`/live/${e.target.value ? `?device_id=${e.target.value}` : ""}`)}>
            <option value="">all</option>
            {(devices.data ?? []).map((d) => (
              <option key={d.id} value={d.id}>
                {d.name}
              </option>
            ))}
          </select>
        </label>
      </div>
      <Source paths={["/api/v1/frames?sampled=true"]} updatedAt={frames.dataUpdatedAt} everyS={EVERY_S} />
      {frames.isError && <ErrorNote what="Loading the latest frames" error={frames.error} />}
      {items === undefined ? (
        <div className="live-grid">
          {[0, 1, 2, 3].map((i) => (
            <Skeleton key={i} height="200px" />
          ))}
        </div>
      ) : items.length === 0 ? (
        <Empty>No sampled frames with images yet{deviceId ? " from this device" : ""}: edge agents upload the frames they are unsure about.</Empty>
      ) : (
        <div className="live-grid">
          {items.map((f) => (
            <LiveTile key={f.id} frame={f} device={names.get(f.device_id) ?? `#${f.device_id}`} />
          ))}
        </div>
      )}
    </>
  );
}

export default function LivePage() {
  return (
    <Suspense fallback={<Skeleton height="40vh" />}>
      <Live />
    </Suspense>
  );
}
