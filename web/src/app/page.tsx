"use client";
import { useQuery } from "@tanstack/react-query";
import Link from "next/link";
import { useRouter, useSearchParams } from "next/navigation";
import { Suspense } from "react";
import { api, type DeviceDrift } from "@/api/client";
import { DriftState } from "@/components/DriftState";
import { ClassMix, ConfidenceHistogram, RateChart } from "@/components/Charts";
import { DeviceTable } from "@/components/DeviceTable";
import { useUser } from "@/components/Session";
import { Empty, ErrorNote, Skeleton, Source } from "@/components/States";
import { RelativeTime } from "@/components/Time";
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

/** Drift per device: the open alarm (if any), the latest check and what drifted in it. */
function DriftTable({ rows }: { rows: DeviceDrift[] }) {
  if (rows.length === 0) return <Empty>No devices yet, so no drift checks.</Empty>;
  return (
    <div className="table-wrap">
      <table className="data" aria-label="Drift per device">
        <thead>
          <tr>
            <th scope="col">Device</th>
            <th scope="col">Drift</th>
            <th scope="col">Last check</th>
            <th scope="col">Drifted features</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((d) => (
            <tr key={d.device_id} data-testid={`drift-${d.device}`}>
              <th scope="row">{d.device}</th>
              <td>
                <DriftState status={d} />
              </td>
              <td>
                <RelativeTime iso={d.last_check?.checked_at} empty="never" />
              </td>
              <td className="small">{d.drifted_features.length ? d.drifted_features.join(", ") : "–"}</td>
            </tr>
          ))}
        </tbody>
      </table>
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
  const rate = useQuery({ queryKey: ["stats-rate", span], queryFn: () => api.statsRate(span), refetchInterval: SLOW_S * 1000 });
  const drift = useQuery({ queryKey: ["drift-status"], queryFn: api.driftStatus, refetchInterval: SLOW_S * 1000 });
  const retraining = useQuery({ queryKey: ["retraining-status"], queryFn: api.retrainingStatus, refetchInterval: SLOW_S * 1000 });

  const s = stats.data;
  const l = labeling.data;
  const production = l?.since_production ?? null;
  const productionReview = production ? l?.versions.find((v) => v.model_version === production.version) : undefined;
  const r = retraining.data;
  const updatedAt = Math.max(devices.dataUpdatedAt, stats.dataUpdatedAt, labeling.dataUpdatedAt, rate.dataUpdatedAt);

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
        paths={[
          "/readyz",
          "/api/v1/devices",
          `/api/v1/stats/summary?window=${span}`,
          `/api/v1/stats/rate?window=${span}`,
          "/api/v1/labeling/stats",
          "/api/v1/retraining/status",
          "/api/v1/drift/status",
        ]}
        updatedAt={updatedAt}
        everyS={FAST_S}
      />
      {stats.isError && <ErrorNote what="Loading statistics" error={stats.error} />}
      {labeling.isError && <ErrorNote what="Loading labeling statistics" error={labeling.error} />}
      {retraining.isError && <ErrorNote what="Loading the retraining status" error={retraining.error} />}

      <section className="tiles" aria-label="Totals">
        <Tile label={`Frames, last ${span}`} value={s && count(s.frames)} hint={s && `${count(s.frames_total)} stored in all`} testId="frames" />
        <Tile label={`Detections, last ${span}`} value={s && count(s.detections)} hint={s && `${count(s.detections_total)} stored in all`} testId="detections" />
        <Tile
          label="Review queue: open"
          value={l && count(l.totals.open)}
          hint={l && `${count(l.totals.leased)} being labeled now · ${count(l.duplicates_suppressed ?? 0)} near-duplicates not queued · ${count(l.totals.expired ?? 0)} expired`}
          testId="queue-open"
        />
        <Tile label="Reviewed frames" value={l && count(l.reviewed_frames)} hint={l && `${count(l.totals.skipped)} skipped`} />
        <Tile
          label="Labels since last training"
          value={r && count(r.labels_since_last_training)}
          hint={r && `retrains at ${count(r.min_labels)}${r.drift_alarm ? " (lowered: drift alarm)" : ""}`}
          testId="labels-since-training"
        />
        <Tile
          label="Production model"
          value={l && (production ? `version ${production.version}` : "none")}
          hint={l && (production ? `${count(production.labels)} labels on ${count(production.reviewed_frames)} frames since it was registered` : "promote one on the Models page")}
          testId="production-version"
        />
        <Tile
          testId="production-precision"
          label="Production precision (reviews)"
          value={l && (productionReview ? percent(productionReview.precision) : "–")}
          hint={
            l &&
            (productionReview
              ? `${count(productionReview.tp)} right, ${count(productionReview.fp)} wrong boxes on ${count(productionReview.reviewed_frames)} reviewed frames`
              : "no reviewed frames of the production model")
          }
        />
        <Tile
          testId="production-miss-rate"
          label="Production miss rate (audit, est.)"
          value={l && (productionReview ? percent(productionReview.miss_rate) : "–")}
          hint={
            l &&
            (productionReview
              ? `${count(productionReview.audit_misses)} of ${count(productionReview.audit_objects)} objects missed on ${count(productionReview.audit_frames)} audit frames`
              : "no audit frames reviewed yet")
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
        {rate.isError && <ErrorNote what="Loading frame rates" error={rate.error} />}
        {rate.data ? (
          <RateChart points={rate.data.points} bucketS={rate.data.bucket_s} windowLabel={span} />
        ) : (
          !rate.isError && <Skeleton height="150px" />
        )}
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

      <section aria-labelledby="drift-title">
        <h2 id="drift-title">Drift per device</h2>
        {drift.isError && <ErrorNote what="Loading drift status" error={drift.error} />}
        {drift.data ? <DriftTable rows={drift.data} /> : !drift.isError && <Skeleton height="4em" />}
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
                  <th scope="col" className="num" title="Dropped at the per-device cap of open tasks; their frames are kept">
                    Expired
                  </th>
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
                    <td className="num">{count(c.expired ?? 0)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          {(l.devices ?? []).length > 0 && (
            <p className="small muted" data-testid="queue-hygiene">
              Per camera:{" "}
              {(l.devices ?? [])
                .map((d) => {
                  const name = devices.data?.find((x) => x.id === d.device_id)?.name ?? `device ${d.device_id}`;
                  return `${name} ${count(d.open)} open, ${count(d.expired)} expired, ${count(d.duplicates)} near-duplicates not queued`;
                })
                .join(" · ")}
            </p>
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
