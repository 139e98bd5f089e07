"use client";
// Drift: per device, the alarm and latest verdict, each feature over time against its reference
// band, the checks with their Evidently reports, and (admins) the pinned reference.
import { keepPreviousData, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useRouter, useSearchParams } from "next/navigation";
import { Suspense, useState } from "react";
import { api, mayAct, type DeviceDrift, type DriftCheck } from "@/api/client";
import { FeatureBand } from "@/components/Charts";
import { Confirm } from "@/components/Confirm";
import { CheckVerdict, DriftState, referenceWords } from "@/components/DriftState";
import { useUser } from "@/components/Session";
import { Empty, ErrorNote, Pager, Skeleton, SkeletonRows, Source } from "@/components/States";
import { RelativeTime } from "@/components/Time";
import { count, percent, utc } from "@/lib/format";

const EVERY_S = 15;
const WINDOWS = ["1h", "6h", "24h", "7d"];
const UNITS: Record<string, string> = {
  brightness: "0–1",
  contrast: "0–1",
  sharpness: "Laplacian variance",
  detection_count: "boxes per frame",
  max_confidence: "0–1",
  mean_confidence: "0–1",
  mean_box_area: "share of frame",
  mean_box_aspect: "width / height",
};

function referenceText(status: DeviceDrift | undefined, check: DriftCheck | null | undefined): string {
  if (status?.reference) return `pinned window ${utc(status.reference.since)} – ${utc(status.reference.until)}`;
  if (!check) return "none yet (the first check picks it)";
  if (check.reference_kind === "model") return `profile of model version ${check.reference_version ?? "?"} (${count(check.reference_frames)} frames)`;
  if (check.reference_kind === "inherited")
    return `inherited from version ${check.reference_version ?? "?"}: its profile (${count(check.reference_frames)} frames), until the version the device runs has its own`;
  if (check.reference_kind === "auto")
    return `the device's first ${count(check.reference_frames)} frames with model version ${check.reference_version ?? "?"} (no version in its line has a profile; frames captured during alarms left out)`;
  return `pinned window (${count(check.reference_frames)} frames)`;
}

/** The latest check's verdict and the last alarm's close, in words. */
function StateNotes({ status }: { status: DeviceDrift }) {
  const last = status.last_check;
  return (
    <>
      {last?.verdict === "inconclusive" && (
        <p className="note" data-testid="inconclusive">
          ? The latest check is inconclusive: {last.verdict_reason ?? "too few independent frames to judge"}. It is not counted towards the alarm; the
          window fills as frames arrive (a line whose parts stay long in view needs a longer VISIONLOOP_DRIFT_WINDOW).
        </p>
      )}
      {!status.alarm && status.close_reason && (
        <p className="note" data-testid="close-reason">
          ✓ The last alarm closed <RelativeTime iso={status.closed_at} />: {status.close_reason}.
        </p>
      )}
    </>
  );
}

/** datetime-local text of a time (the browser's zone), and back to an ISO time. */
function localInput(ms: number): string {
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60_000);
  return d.toISOString().slice(0, 16);
}

function ReferencePanel({ status, admin }: { status: DeviceDrift; admin: boolean }) {
  const queryClient = useQueryClient();
  const [since, setSince] = useState(() => localInput(Date.now() - 3600_000));
  const [until, setUntil] = useState(() => localInput(Date.now()));
  const [confirming, setConfirming] = useState<"pin" | "unpin" | null>(null);
  const done = () => void queryClient.invalidateQueries({ queryKey: ["drift-status"] });
  const pin = useMutation({
    mutationFn: () => api.pinReference(status.device_id, new Date(since).toISOString(), new Date(until).toISOString()),
    onSuccess: done,
  });
  const unpin = useMutation({ mutationFn: () => api.unpinReference(status.device_id), onSuccess: done });
  const check = useMutation({ mutationFn: () => api.queueDriftCheck(status.device_id) });
  return (
    <section className="card" aria-labelledby="reference-title">
      <h2 id="reference-title">Reference of {status.device}</h2>
      <p data-testid="reference">{referenceText(status, status.last_check)}</p>
      <StateNotes status={status} />
      {pin.isSuccess && <p className="note">✓ Pinned: the next check compares with this window.</p>}
      {unpin.isSuccess && <p className="note">✓ Unpinned: the next check compares with the model&apos;s profile.</p>}
      {check.isSuccess && (
        <p className="note">
          ✓ Check queued as <a href={`/jobs/?job=${check.data.job_id}`}>job {check.data.job_id}</a>.
        </p>
      )}
      {pin.isError && <ErrorNote what="Pinning the reference" error={pin.error} />}
      {unpin.isError && <ErrorNote what="Unpinning the reference" error={unpin.error} />}
      {check.isError && <ErrorNote what="Queueing a check" error={check.error} />}
      {admin && (
        <>
          <form
            className="inline-form"
            aria-label="Pin a reference window"
            onSubmit={(e) => {
              e.preventDefault();
              setConfirming("pin");
            }}
          >
            <label>
              From (your time){" "}
              <input type="datetime-local" value={since} onChange={(e) => setSince(e.target.value)} required />
            </label>
            <label>
              Until{" "}
              <input type="datetime-local" value={until} onChange={(e) => setUntil(e.target.value)} required />
            </label>
            <button type="submit" disabled={pin.isPending}>
              Accept as the new normal
            </button>
            {status.reference && (
              <button type="button" onClick={() => setConfirming("unpin")} disabled={unpin.isPending}>
                Unpin
              </button>
            )}
            <button type="button" onClick={() => check.mutate()} disabled={check.isPending}>
              Check now
            </button>
          </form>
          {confirming === "pin" && (
            <Confirm
              title={`Pin a reference for ${status.device}?`}
              confirmLabel="Pin reference"
              onCancel={() => setConfirming(null)}
              onConfirm={() => {
                setConfirming(null);
                pin.mutate();
              }}
            >
              <p>
                The frames {status.device} captured from {since.replace("T", " ")} until {until.replace("T", " ")} (your time) become what its
                checks compare with, instead of the model&apos;s profile. Use it after a deliberate change (new lighting, a new product).
              </p>
            </Confirm>
          )}
          {confirming === "unpin" && (
            <Confirm
              title={`Unpin the reference of ${status.device}?`}
              confirmLabel="Unpin"
              onCancel={() => setConfirming(null)}
              onConfirm={() => {
                setConfirming(null);
                unpin.mutate();
              }}
            >
              <p>Its checks compare with the profile of the model version it runs again.</p>
            </Confirm>
          )}
        </>
      )}
    </section>
  );
}

function Features({ deviceId, window, latest }: { deviceId: number; window: string; latest: DriftCheck | null }) {
  const features = useQuery({
    queryKey: ["drift-features", deviceId, window],
    queryFn: () => api.driftFeatures(deviceId, window),
    refetchInterval: EVERY_S * 1000,
    placeholderData: keepPreviousData,
  });
  // An inconclusive check's per-feature results are not verdicts: no feature is marked by it.
  const judged = latest?.verdict === "inconclusive" ? [] : (latest?.features ?? []);
  const verdicts = new Map(judged.map((f) => [f.feature, f.drifted]));
  const data = features.data;
  return (
    <section aria-labelledby="features-title">
      <h2 id="features-title">Features over the last {window}</h2>
      <p className="chart-legend">
        <span>
          <span className="swatch swatch-ref" /> reference, 5–95th percentile (dashed: its median)
        </span>
        <span>
          <span className="swatch swatch-iqr" /> frames per interval, 25–75th percentile (line: median)
        </span>
        {data && (
          <span>
            {data.features[0]?.points.length ?? 0} of 48 intervals with frames, up to {data.sample_size} frames read from each
          </span>
        )}
      </p>
      {features.isError && <ErrorNote what="Loading the features" error={features.error} />}
      {data && data.reference_kind === null && <p className="note">No check of this device yet: the reference band appears after the first one.</p>}
      <div className="charts">
        {!data
          ? Array.from({ length: 8 }, (_, i) => <Skeleton key={i} height="190px" />)
          : data.features.map((f) => (
              <FeatureBand
                key={f.feature}
                feature={f.feature}
                unit={UNITS[f.feature] ?? ""}
                points={f.points}
                reference={f.reference_quantiles}
                since={data.since}
                until={data.until}
                drifted={verdicts.has(f.feature) ? (verdicts.get(f.feature) ?? null) : null}
              />
            ))}
      </div>
    </section>
  );
}

/** How a window was thinned before the tests (consecutive frames are not independent). */
function thinned(stride: number) {
  return stride > 1 ? <span className="muted" title="The tests compared 1 frame in this many: the window thinned by its decorrelation lag"> · 1 in {stride} tested</span> : null;
}

function Checks({ deviceId }: { deviceId: number }) {
  const [cursor, setCursor] = useState<string | undefined>(undefined);
  const checks = useQuery({
    queryKey: ["drift-checks", deviceId, cursor],
    queryFn: () => api.driftChecks(deviceId, cursor),
    refetchInterval: EVERY_S * 1000,
    placeholderData: keepPreviousData,
  });
  const items = checks.data?.items;
  return (
    <section aria-labelledby="checks-title">
      <h2 id="checks-title">
        Checks{" "}
        <Pager cursor={cursor} next={checks.data?.next_cursor} onCursor={setCursor} />
      </h2>
      {checks.isError && <ErrorNote what="Loading the checks" error={checks.error} />}
      <div className="table-wrap">
        <table className="data" aria-label="Drift checks">
          <thead>
            <tr>
              <th scope="col">Checked</th>
              <th scope="col">Verdict</th>
              <th scope="col" className="num">Drifted</th>
              <th scope="col">Drifted features</th>
              <th scope="col">Reference</th>
              <th scope="col" className="num">Window</th>
              <th scope="col">Report</th>
            </tr>
          </thead>
          <tbody>
            {items === undefined
              ? <SkeletonRows rows={3} cols={7} />
              : items.map((c) => (
                  <tr key={c.id} data-testid={`check-${c.id}`}>
                    <td>
                      <RelativeTime iso={c.checked_at} />
                    </td>
                    <td>
                      <CheckVerdict check={c} />
                      {c.alarm_event && <span className="small muted"> · alarm {c.alarm_event}</span>}
                    </td>
                    {c.verdict === "inconclusive" ? (
                      <td className="num muted" colSpan={2} title={c.verdict_reason ?? ""}>
                        not counted: ~{c.effective_frames ?? "?"} independent frames
                      </td>
                    ) : (
                      <>
                        <td className="num">
                          {c.drifted_features} of {c.features.length} ({percent(c.share_drifted, 0)})
                        </td>
                        <td className="small">
                          {c.features
                            .filter((f) => f.drifted)
                            .map((f) => f.feature)
                            .join(", ") || "–"}
                        </td>
                      </>
                    )}
                    <td className="small">
                      {referenceWords(c)} · {count(c.reference_frames)} frames
                      {thinned(c.reference_stride)}
                    </td>
                    <td className="num" title={`${utc(c.window_start)} – ${utc(c.window_end)}`}>
                      {count(c.window_frames)} frames
                      {thinned(c.window_stride)}
                    </td>
                    <td>
                      {c.has_report ? (
                        <a href={api.driftReportUrl(c.id)} target="_blank" rel="noreferrer">
                          Evidently report<span className="sr-only"> of check {c.id}</span>
                        </a>
                      ) : (
                        <span className="muted">none</span>
                      )}
                    </td>
                  </tr>
                ))}
          </tbody>
        </table>
        {items !== undefined && items.length === 0 && (
          <Empty>No checks of this device yet: the worker checks every device that sent frames, every few minutes.</Empty>
        )}
      </div>
    </section>
  );
}

function Drift() {
  const params = useSearchParams();
  const router = useRouter();
  const user = useUser();
  const status = useQuery({ queryKey: ["drift-status"], queryFn: api.driftStatus, refetchInterval: EVERY_S * 1000 });
  const window = WINDOWS.includes(params.get("window") ?? "") ? (params.get("window") as string) : "24h";
  const rows = status.data;
  const wanted = Number(params.get("device")) || null;
  const selected = rows?.find((s) => s.device_id === wanted) ?? rows?.[0];

  function go(next: { device?: number; window?: string }) {
    const query = new URLSearchParams();
    query.set("device", String(next.device ?? selected?.device_id ?? ""));
    query.set("window", next.window ?? window);
    router.replace(`/drift/?${query.toString()}`);
  }

  return (
    <>
      <div className="page-head">
        <h1>Drift</h1>
        <label className="window">
          Window{" "}
          <select value={window} onChange={(e) => go({ window: e.target.value })}>
            {WINDOWS.map((w) => (
              <option key={w} value={w}>
                last {w}
              </option>
            ))}
          </select>
        </label>
      </div>
      <Source paths={["/api/v1/drift/status", "/api/v1/drift/features", "/api/v1/drift/checks"]} updatedAt={status.dataUpdatedAt} everyS={EVERY_S} />
      {status.isError && <ErrorNote what="Loading the drift status" error={status.error} />}
      <div className="table-wrap">
        <table className="data" aria-label="Drift per device">
          <thead>
            <tr>
              <th scope="col">Device</th>
              <th scope="col">Drift</th>
              <th scope="col">Last check</th>
              <th scope="col" className="num">Share drifted</th>
              <th scope="col">Drifted features</th>
              <th scope="col">Reference</th>
            </tr>
          </thead>
          <tbody>
            {rows === undefined
              ? [0, 1].map((i) => (
                  <tr key={i}>
                    {Array.from({ length: 6 }, (_, k) => (
                      <td key={k}>
                        <Skeleton />
                      </td>
                    ))}
                  </tr>
                ))
              : rows.map((s) => (
                  <tr
                    key={s.device_id}
                    className="clickable"
                    aria-selected={s.device_id === selected?.device_id}
                    tabIndex={0}
                    onClick={() => go({ device: s.device_id })}
                    onKeyDown={(e) => e.key === "Enter" && go({ device: s.device_id })}
                    data-testid={`drift-${s.device}`}
                  >
                    <td>{s.device}</td>
                    <td>
                      <DriftState status={s} />
                    </td>
                    <td>
                      <RelativeTime iso={s.last_check?.checked_at} />
                    </td>
                    <td className="num">{s.last_check && s.last_check.verdict !== "inconclusive" ? percent(s.last_check.share_drifted, 0) : "–"}</td>
                    <td className="small">{s.drifted_features.join(", ") || "–"}</td>
                    <td className="small">{s.reference ? "pinned" : s.last_check ? referenceWords(s.last_check) : "–"}</td>
                  </tr>
                ))}
          </tbody>
        </table>
        {rows !== undefined && rows.length === 0 && <Empty>No devices yet: add one on the Devices page and start its agent.</Empty>}
      </div>
      {selected && (
        <>
          <ReferencePanel key={selected.device_id} status={selected} admin={mayAct(user, "admin")} />
          <Features deviceId={selected.device_id} window={window} latest={selected.last_check} />
          <Checks key={`checks-${selected.device_id}`} deviceId={selected.device_id} />
        </>
      )}
    </>
  );
}

export default function DriftPage() {
  return (
    <Suspense fallback={<Skeleton height="40vh" />}>
      <Drift />
    </Suspense>
  );
}
