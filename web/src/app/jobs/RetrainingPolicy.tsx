"use client";
// The retraining policy as the server sees it now, and the admin's "Retrain now".
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import Link from "next/link";
import { useState, type ReactNode } from "react";
import { api, ApiError, type RetrainingStatus } from "@/api/client";
import { Confirm } from "@/components/Confirm";
import { ErrorNote, Skeleton } from "@/components/States";
import { RelativeTime } from "@/components/Time";
import { count } from "@/lib/format";

const EVERY_S = 5;

/** The job a 409 from the trigger names (a train job is already queued or running). */
function runningJobId(error: unknown): number | null {
  if (!(error instanceof ApiError) || error.status !== 409) return null;
  const id = error.extra["job_id"];
  return typeof id === "number" ? id : null;
}

function Fact({ label, children, testId }: { label: string; children: ReactNode; testId?: string }) {
  return (
    <div className="tile">
      <div className="tile-label">{label}</div>
      <div className="tile-value" data-testid={testId}>
        {children}
      </div>
    </div>
  );
}

function Facts({ s }: { s: RetrainingStatus }) {
  const share = Math.min(1, s.labels_since_last_training / Math.max(1, s.min_labels));
  const pct = Math.round(share * 100);
  const cooling = s.cooldown_until !== null && Date.parse(s.cooldown_until) > Date.now();
  return (
    <div className="policy">
      <Fact label="Labels since last training / threshold" testId="labels-since-training">
        {count(s.labels_since_last_training)} / {count(s.min_labels)}
        <div>
          <span className="progress" role="progressbar" aria-valuenow={pct} aria-valuemin={0} aria-valuemax={100} aria-label="labels toward the threshold">
            <span style={{ width: `${pct}%` }} />
          </span>
        </div>
      </Fact>
      <Fact label="Drift alarm">
        {s.drift_alarm ? <span className="state state-alarm">⚠ open (threshold lowered)</span> : <span className="state state-ok">✓ none</span>}
      </Fact>
      <Fact label="Cooldown">
        {cooling ? (
          <span className="state state-warn">
            ⏸ until <RelativeTime iso={s.cooldown_until} />
          </span>
        ) : (
          <span className="state state-ok">✓ over</span>
        )}
      </Fact>
      <Fact label="Auto-promote">
        {s.auto_promote ? "on" : "off"}
        <div className="tile-hint muted">{s.auto_promote ? "a candidate that passes the gate goes to production" : "a candidate that passes the gate gets staging"}</div>
      </Fact>
    </div>
  );
}

export function RetrainingPolicy({ admin, onQueued }: { admin: boolean; onQueued: (jobId: number) => void }) {
  const queryClient = useQueryClient();
  const status = useQuery({ queryKey: ["retraining-status"], queryFn: api.retrainingStatus, refetchInterval: EVERY_S * 1000 });
  const [asking, setAsking] = useState(false);
  const [reason, setReason] = useState("");
  const trigger = useMutation({
    mutationFn: () => api.retrain(reason.trim()),
    onSuccess: (answer) => {
      void queryClient.invalidateQueries({ queryKey: ["jobs"] });
      void queryClient.invalidateQueries({ queryKey: ["retraining-status"] });
      onQueued(answer.job_id);
    },
  });
  const s = status.data;
  const busy = runningJobId(trigger.error);
  return (
    <section aria-labelledby="policy-title" className="card">
      <h2 id="policy-title">Retraining policy</h2>
      {status.isError && <ErrorNote what="Loading the retraining status" error={status.error} />}
      {!s ? (
        !status.isError && <Skeleton height="5em" />
      ) : (
        <>
          <Facts s={s} />
          <p>
            {s.eligible ? <span className="state state-ok">● would retrain now:</span> : <span className="state state-muted">○ waiting:</span>}{" "}
            <span data-testid="policy-reason">{s.reason}</span>
            {s.last_job && (
              <>
                {" "}
                · last train job <Link href={`/jobs/?job=${s.last_job.id}`}>{s.last_job.id}</Link> ({s.last_job.status},{" "}
                <RelativeTime iso={s.last_job.created_at} />)
              </>
            )}
          </p>
        </>
      )}
      {admin && (
        <button type="button" className="primary" onClick={() => setAsking(true)} disabled={trigger.isPending}>
          Retrain now
        </button>
      )}
      {trigger.isSuccess && (
        <p className="note" role="status" data-testid="retrain-result">
          Train job {trigger.data.job_id} queued: a worker picks it up (its progress is below).
          {trigger.data.warning && (
            <>
              <br />
              <span className="state state-warn" data-testid="retrain-warning">
                ⚠ {trigger.data.warning}
              </span>
            </>
          )}
        </p>
      )}
      {busy !== null ? (
        <p className="note" role="status" data-testid="retrain-result">
          A train job is already queued or running: <Link href={`/jobs/?job=${busy}`}>job {busy}</Link>. Cancel it first to start another.
        </p>
      ) : (
        trigger.isError && <ErrorNote what="Queueing a train job" error={trigger.error} />
      )}
      {asking && (
        <Confirm
          title="Retrain now?"
          confirmLabel="Queue train job"
          confirmDisabled={!reason.trim()}
          onCancel={() => setAsking(false)}
          onConfirm={() => {
            setAsking(false);
            trigger.mutate();
          }}
        >
          <p>Ignores the label threshold and the cooldown. A worker fine-tunes the production model on the reviewed labels; the candidate is gated before any promotion.</p>
          {s && s.labels_since_last_training < s.min_labels && (
            <p className="state state-warn" data-testid="retrain-few-labels">
              ⚠ Only {count(s.labels_since_last_training)} reviewed frames since the last training, fewer than the policy&apos;s {count(s.min_labels)}: the candidate learns little
              from them, and its gate may have too few held-out images to promote it automatically.
            </p>
          )}
          <label>
            Reason (recorded)
            <textarea value={reason} onChange={(e) => setReason(e.target.value)} maxLength={500} required />
          </label>
        </Confirm>
      )}
    </section>
  );
}
