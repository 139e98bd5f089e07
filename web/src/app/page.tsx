"use client";
import { useQuery } from "@tanstack/react-query";
import Link from "next/link";
import { useRouter, useSearchParams } from "next/navigation";
import { Suspense } from "react";
import { api } from "@/api/client";
import { ClassMix, ConfidenceHistogram } from "@/components/Charts";
import { DeviceTable } from "@/components/DeviceTable";
import { useUser } from "@/components/Session";
import { ErrorNote, Skeleton, Source } from "@/components/States";
import { count, percent } from "@/lib/format";

const WINDOWS = ["1h", "24h", "7d"] as const;
const FAST_S = 5;
const SLOW_S = 15;
// The edge agent's default confidence threshold (visionloop edge --conf).
const EDGE_THRESHOLD = 0.25;

function Tile({ label, value, hint, testId }: { label: string; value: string | undefined; hint?: string; testId?: string }) {
  return (
    <div className="tile">
      <div className="tile-label">{label}</div>
      <div className="tile-value" data-testid={testId}>
        {value === undefined ? <Skeleton height="1.6em" width="5em" /> : value}
      </div>
      {hint && <div className="tile-hint muted">{hint}</div>}
    </div>
  );
}

function Overview() {
  const params = useSearchParams();
  const router = useRouter();
  const user = useUser();
  const span = WINDOWS.find((w) => w === params.get("window")) ?? "24h";

  const ready = useQuery({ queryKey: ["readyz"], queryFn: api.readyz, refetchInterval: FAST_S * 1000, retry: false });
  const devices = useQuery({ queryKey: ["devices"], queryFn: api.devices, refetchInterval: FAST_S * 1000 });
  const stats = useQuery({
    queryKey: ["stats", span],
    queryFn: () => api.statsSummary(span),
    refetchInterval: SLOW_S * 1000,
  });
  const labeling = useQuery({ queryKey: ["labeling-stats"], queryFn: api.labelingStats, refetchInterval: SLOW_S * 1000 });

  const s = stats.data;
  const l = labeling.data;
  const production = l?.since_production ?? null;
  const productionReview = production ? l?.versions.find((v) => v.model_version === production.version) : undefined;
  const updatedAt = Math.max(devices.dataUpdatedAt, stats.dataUpdatedAt, labeling.dataUpdatedAt);

  return (
    <>
      <div className="page-head">
        <h1>Overview</h1>
        <div className="server-state" aria-live="polite">
          {ready.isPending ? (
            <Skeleton width="9em" />
          ) : ready.isError ? (
            <span className="state state-alarm" data-testid="ready">
              ✕ server not ready: {ready.error.message}
            </span>
          ) : (
            <span className="state state-ok" data-testid="ready">
              ● server ready
            </span>
          )}
        </div>
        <label className="window">
          Window{" "}
          <select value={span} onChange={(e) => router.replace(`/?window=${e.target.value}`)}>
            {WINDOWS.map((w) => (
              <option key={w} value={w}>
                last {w}
              </option>
            ))}
          </select>
        </label>
      </div>
      <Source
        paths={["/readyz", "/api/v1/devices", `/api/v1/stats/summary?window=${span}`, "/api/v1/labeling/stats"]}
        updatedAt={updatedAt}
        everyS={FAST_S}
      />
      {stats.isError && <ErrorNote what="Loading statistics" error={stats.error} />}
      {labeling.isError && <ErrorNote what="Loading labeling statistics" error={labeling.error} />}

      <section className="tiles" aria-label="Totals">
        <Tile label={`Frames, last ${span}`} value={s && count(s.frames)} hint={s && `${count(s.frames_total)} stored in all`} testId="frames" />
        <Tile label={`Detections, last ${span}`} value={s && count(s.detections)} hint={s && `${count(s.detections_total)} stored in all`} testId="detections" />
        <Tile label="Review queue: open" value={l && count(l.totals.open)} hint={l && `${count(l.totals.leased)} being labeled now`} testId="queue-open" />
        <Tile label="Reviewed frames" value={l && count(l.reviewed_frames)} hint={l && `${count(l.totals.skipped)} skipped`} />
        <Tile
          label="Labels since production model"
          value={l && (production ? count(production.labels) : "–")}
          hint={l && (production ? `model ${production.version}, ${count(production.reviewed_frames)} frames` : "no production model")}
        />
        <Tile
          label="Production precision (reviews)"
          value={l && (productionReview ? percent(productionReview.precision) : "–")}
          hint={
            l &&
            (productionReview
              ? `miss rate ${percent(productionReview.miss_rate)} on ${count(productionReview.audit_frames)} audit frames`
              : "no reviewed frames of the production model")
          }
        />
      </section>

      <section aria-labelledby="devices-title">
        <h2 id="devices-title">
          Devices{" "}
          {devices.data && <span className="muted small">({devices.data.length})</span>}
          {user?.role === "admin" && (
            <Link className="small head-link" href="/devices/">
              manage
            </Link>
          )}
        </h2>
        {devices.isError && <ErrorNote what="Loading devices" error={devices.error} />}
        <DeviceTable devices={devices.data} />
      </section>

      <section className="charts" aria-label="Charts">
        {s ? (
          <>
            <ClassMix rows={s.per_class.map((c) => ({ name: c.class_name, value: c.detections }))} windowLabel={span} />
            <ConfidenceHistogram
              edges={s.confidence_histogram.edges}
              counts={s.confidence_histogram.counts}
              threshold={EDGE_THRESHOLD}
              windowLabel={span}
            />
          </>
        ) : (
          <>
            <Skeleton height="150px" />
            <Skeleton height="150px" />
          </>
        )}
      </section>

      {l && (
        <section aria-labelledby="queue-title">
          <h2 id="queue-title">Review queue by reason</h2>
          {Object.keys(l.tasks).length === 0 ? (
            <p className="empty">The queue is empty: no frame has been sent to review yet.</p>
          ) : (
            <table className="data compact">
              <thead>
                <tr>
                  <th scope="col">Reason</th>
                  <th scope="col" className="num">Open</th>
                  <th scope="col" className="num">Being labeled</th>
                  <th scope="col" className="num">Done</th>
                  <th scope="col" className="num">Skipped</th>
                </tr>
              </thead>
              <tbody>
                {Object.entries(l.tasks).map(([reason, c]) => (
                  <tr key={reason}>
                    <th scope="row">{reason}</th>
                    <td className="num">{count(c.open)}</td>
                    <td className="num">{count(c.leased)}</td>
                    <td className="num">{count(c.done)}</td>
                    <td className="num">{count(c.skipped)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </section>
      )}
    </>
  );
}

export default function OverviewPage() {
  return (
    <Suspense fallback={<Skeleton height="40vh" />}>
      <Overview />
    </Suspense>
  );
}
