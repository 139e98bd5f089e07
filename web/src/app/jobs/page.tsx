"use client";
import { keepPreviousData, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import Link from "next/link";
import { useRouter, useSearchParams } from "next/navigation";
import { Suspense, useState } from "react";
import { api, mayAct, type Job, type JobStatus } from "@/api/client";
import { Confirm } from "@/components/Confirm";
import { useUser } from "@/components/Session";
import { Empty, ErrorNote, Pager, Skeleton, SkeletonRows, Source } from "@/components/States";
import { RelativeTime } from "@/components/Time";
import { duration } from "@/lib/format";
import { RetrainingPolicy } from "./RetrainingPolicy";

const EVERY_S = 3;
const KINDS = ["train", "evaluate", "drift_check", "quantize"] as const;
const STATUSES: JobStatus[] = ["queued", "running", "succeeded", "failed", "cancelled"];
const STATUS_LOOK: Record<JobStatus, [string, string]> = {
  queued: ["state-muted", "○"],
  running: ["", "▶"],
  succeeded: ["state-ok", "✓"],
  failed: ["state-alarm", "✕"],
  cancelled: ["state-warn", "⏹"],
};

function StatusBadge({ status }: { status: JobStatus }) {
  const [cls, icon] = STATUS_LOOK[status];
  return (
    <span className={`state ${cls}`}>
      <span aria-hidden="true">{icon}</span> {status}
    </span>
  );
}

function Progress({ job }: { job: Job }) {
  const pct = Math.round(Math.min(1, Math.max(0, job.progress)) * 100);
  return (
    <span>
      <span className="progress" role="progressbar" aria-valuenow={pct} aria-valuemin={0} aria-valuemax={100} aria-label={`job ${job.id} progress`}>
        <span style={{ width: `${pct}%` }} />
      </span>
      {pct} %
    </span>
  );
}

function elapsed(job: Job): string {
  if (!job.started_at) return "–";
  const end = job.finished_at ? Date.parse(job.finished_at) : Date.now();
  return duration((end - Date.parse(job.started_at)) / 1000);
}

function JobPanel({ id, admin }: { id: number; admin: boolean }) {
  const queryClient = useQueryClient();
  const job = useQuery({ queryKey: ["job", id], queryFn: () => api.job(id), refetchInterval: EVERY_S * 1000 });
  const [confirming, setConfirming] = useState(false);
  const cancel = useMutation({
    mutationFn: () => api.cancelJob(id),
    onSuccess: (answer) => {
      queryClient.setQueryData(["job", id], answer);
      void queryClient.invalidateQueries({ queryKey: ["jobs"] });
    },
  });
  const j = job.data;
  return (
    <section className="card job-panel" aria-labelledby="job-title">
      <h2 id="job-title">
        Job {id} {j && <>· {j.kind}</>}
      </h2>
      {job.isError && <ErrorNote what={`Loading job ${id}`} error={job.error} />}
      {!j ? (
        !job.isError && <Skeleton height="8em" />
      ) : (
        <>
          <p>
            <StatusBadge status={j.status} /> <Progress job={j} /> <span className="muted">{j.message}</span>
          </p>
          <p className="muted small">
            by {j.created_by} · queued <RelativeTime iso={j.created_at} /> · ran {elapsed(j)} · attempt {j.attempts} of {j.max_attempts}
            {j.worker_id && <> · worker <code>{j.worker_id}</code></>}
          </p>
          {j.error && (
            <p className="note note-error">
              <strong>✕ Failed:</strong> {j.error}
            </p>
          )}
          {j.kind === "train" && typeof j.result?.["version"] === "string" && (
            <p>
              Registered <Link href={`/models/?version=${j.result["version"]}`}>version {j.result["version"]}</Link>
            </p>
          )}
          {j.result && (
            <details>
              <summary>Result</summary>
              <pre className="log">{JSON.stringify(j.result, null, 2)}</pre>
            </details>
          )}
          <h3 className="small">
            Log (last lines){" "}
            <a href={`/api/v1/jobs/${id}/log`} target="_blank" rel="noreferrer">
              whole log
            </a>
          </h3>
          <pre className="log" data-testid="job-log">
            {j.log_tail || "(nothing logged yet)"}
          </pre>
          {admin && (j.status === "queued" || j.status === "running") && (
            <button type="button" onClick={() => setConfirming(true)} disabled={j.cancel_requested || cancel.isPending}>
              {j.cancel_requested ? "Cancelling…" : "Cancel job"}
            </button>
          )}
          {cancel.isError && <ErrorNote what="Cancelling" error={cancel.error} />}
          {confirming && (
            <Confirm
              title={`Cancel job ${id} (${j.kind})?`}
              confirmLabel="Cancel job"
              onCancel={() => setConfirming(false)}
              onConfirm={() => {
                setConfirming(false);
                cancel.mutate();
              }}
            >
              <p>A queued job never starts; a running one is stopped within seconds. It cannot be resumed.</p>
            </Confirm>
          )}
        </>
      )}
    </section>
  );
}

function Jobs() {
  const params = useSearchParams();
  const router = useRouter();
  const user = useUser();
  const status = STATUSES.find((s) => s === params.get("status"));
  const kind = KINDS.find((k) => k === params.get("kind"));
  const selected = Number(params.get("job")) || null;
  const [cursor, setCursor] = useState<string | undefined>(undefined);
  const jobs = useQuery({
    queryKey: ["jobs", status, kind, cursor],
    queryFn: () => api.jobs({ status, kind, cursor }),
    refetchInterval: EVERY_S * 1000,
    placeholderData: keepPreviousData,
  });

  function go(next: { status?: string; kind?: string; job?: number | null }) {
    const query = new URLSearchParams();
    const s = "status" in next ? next.status : status;
    const k = "kind" in next ? next.kind : kind;
    const j = "job" in next ? next.job : selected;
    if (s) query.set("status", s);
    if (k) query.set("kind", k);
    if (j) query.set("job", String(j));
    router.replace(`/jobs/${query.size ? `?${query.toString()}` : ""}`);
  }

  const items = jobs.data?.items;
  return (
    <>
      <div className="page-head">
        <h1>Retraining and jobs</h1>
      </div>
      <Source paths={["/api/v1/retraining/status", "/api/v1/jobs"]} updatedAt={jobs.dataUpdatedAt} everyS={EVERY_S} />
      <RetrainingPolicy
        admin={mayAct(user, "admin")}
        onQueued={(id) => {
          setCursor(undefined);
          go({ job: id });
        }}
      />
      <h2>Jobs</h2>
      <div className="filters">
        <label>
          Kind{" "}
          <select
            value={kind ?? ""}
            onChange={(e) => {
              setCursor(undefined);
              go({ kind: e.target.value || undefined });
            }}
          >
            <option value="">all</option>
            {KINDS.map((k) => (
              <option key={k} value={k}>
                {k}
              </option>
            ))}
          </select>
        </label>
        <label>
          Status{" "}
          <select
            value={status ?? ""}
            onChange={(e) => {
              setCursor(undefined);
              go({ status: e.target.value || undefined });
            }}
          >
            <option value="">all</option>
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <Pager cursor={cursor} next={jobs.data?.next_cursor} onCursor={setCursor} />
      </div>
      {jobs.isError && <ErrorNote what="Loading jobs" error={jobs.error} />}
      <div className="table-wrap">
        <table className="data" aria-label="Jobs">
          <thead>
            <tr>
              <th scope="col" className="num">Id</th>
              <th scope="col">Kind</th>
              <th scope="col">Status</th>
              <th scope="col">Progress</th>
              <th scope="col">Message</th>
              <th scope="col">By</th>
              <th scope="col">Queued</th>
              <th scope="col" className="num">Ran</th>
            </tr>
          </thead>
          <tbody>
            {items === undefined
              ? <SkeletonRows rows={3} cols={8} />
              : items.map((job) => (
                  <tr
                    key={job.id}
                    className="clickable"
                    aria-selected={job.id === selected}
                    tabIndex={0}
                    onClick={() => go({ job: job.id })}
                    onKeyDown={(e) => e.key === "Enter" && go({ job: job.id })}
                    data-testid={`job-${job.id}`}
                  >
                    <td className="num">{job.id}</td>
                    <td>{job.kind}</td>
                    <td>
                      <StatusBadge status={job.status} />
                    </td>
                    <td>
                      <Progress job={job} />
                    </td>
                    <td className="small">{job.error ?? job.message}</td>
                    <td>{job.created_by}</td>
                    <td>
                      <RelativeTime iso={job.created_at} />
                    </td>
                    <td className="num">{elapsed(job)}</td>
                  </tr>
                ))}
          </tbody>
        </table>
        {items !== undefined && items.length === 0 && (
          <Empty>{status || kind ? `No ${[status, kind].filter(Boolean).join(" ")} jobs.` : "No jobs yet: retraining and dataset jobs appear here once queued."}</Empty>
        )}
      </div>
      {selected && <JobPanel key={selected} id={selected} admin={mayAct(user, "admin")} />}
    </>
  );
}

export default function JobsPage() {
  return (
    <Suspense fallback={<Skeleton height="40vh" />}>
      <Jobs />
    </Suspense>
  );
}
