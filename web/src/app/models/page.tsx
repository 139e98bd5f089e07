"use client";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import Link from "next/link";
import { useRouter, useSearchParams } from "next/navigation";
import { Suspense, useState } from "react";
import { api, mayAct, type ModelVersion } from "@/api/client";
import { Map50Chart } from "@/components/Charts";
import { Confirm } from "@/components/Confirm";
import { useUser } from "@/components/Session";
import { Empty, ErrorNote, Skeleton, Source } from "@/components/States";
import { RelativeTime } from "@/components/Time";
import { count, fixed } from "@/lib/format";
import { aliasHistory, gateRules, gateSet, map50Points, SETS, setMap50, stagedReason, verdict, type GateRule, type Verdict } from "./versions";

const EVERY_S = 10;
const VERDICT_LOOK: Record<Verdict, [string, string]> = {
  passed: ["state-ok", "✓"],
  "staging only": ["state-warn", "◐"],
  failed: ["state-alarm", "✕"],
  "not gated": ["state-muted", "–"],
};

function GateBadge({ version }: { version: ModelVersion }) {
  const v = verdict(version);
  const [cls, icon] = VERDICT_LOOK[v];
  return (
    <span className={`state ${cls}`} title={version.tags["gate_summary"]}>
      <span aria-hidden="true">{icon}</span> {v === "not gated" ? v : `gate ${v}`}
    </span>
  );
}

function Aliases({ version }: { version: ModelVersion }) {
  if (version.aliases.length === 0) return <span className="muted">–</span>;
  return (
    <>
      {version.aliases.map((a) => (
        <span key={a} className="badge badge-alias">
          {a}
        </span>
      ))}
    </>
  );
}

function signed(x: number): string {
  return `${x >= 0 ? "+" : "−"}${Math.abs(x).toFixed(3)}`;
}

/** What a gate rule stood on: images, and true boxes per class. */
function EvidenceCell({ rule }: { rule: GateRule }) {
  const e = rule.evidence;
  if (!e) return <>–</>;
  const boxes = Object.entries(e.boxes);
  return (
    <>
      {count(e.images)} images
      {boxes.length > 0 && (
        <>
          <br />
          <span className="muted">{boxes.map(([name, n]) => `${name} ${count(n)}`).join(", ")} boxes</span>
        </>
      )}
    </>
  );
}

/** One version in full: metrics on both sets, the gate rule by rule, who moved its aliases. */
function VersionPanel({ version }: { version: ModelVersion }) {
  const rules = gateRules(version);
  const history = aliasHistory(version);
  return (
    <section className="card job-panel" aria-labelledby="version-title" data-testid="version-panel">
      <h2 id="version-title">
        Version {version.version} {version.aliases.length > 0 && <Aliases version={version} />}
      </h2>
      <p className="muted small">
        {version.description || "no description"} · registered <RelativeTime iso={version.created_at} /> · sha256{" "}
        <code title={version.sha256}>{version.sha256.slice(0, 12)}…</code> · {count(Math.round(version.size_bytes / 1024))} KiB
        {version.train_job_id !== null && (
          <>
            {" "}· made by <Link href={`/jobs/?job=${version.train_job_id}`}>train job {version.train_job_id}</Link>
          </>
        )}
      </p>
      <p className="small" data-testid="drift-reference">
        Drift reference: {version.drift_reference}
      </p>
      <div className="two-col">
        <div>
          <h3 className="small">Evaluation at gate time</h3>
          <table className="data compact">
            <thead>
              <tr>
                <th scope="col">Set</th>
                <th scope="col" className="num">This version</th>
                <th scope="col" className="num">Production then</th>
                <th scope="col" className="num">Images</th>
              </tr>
            </thead>
            <tbody>
              {SETS.map((set) => {
                const s = gateSet(version, set);
                return (
                  <tr key={set}>
                    <th scope="row">{set}</th>
                    <td className="num">{fixed(s?.candidate?.map50 ?? setMap50(version, set), 3, "mAP50")}</td>
                    <td className="num">{fixed(s?.production?.map50, 3, "mAP50")}</td>
                    <td className="num">{s?.candidate ? count(s.candidate.images) : (s?.note ?? "–")}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
          <h3 className="small">Metrics (tags)</h3>
          {Object.keys(version.metrics).length === 0 ? (
            <Empty>No metrics recorded on this version.</Empty>
          ) : (
            <p className="small">
              {Object.entries(version.metrics)
                .map(([k, v]) => `${k} ${v.toFixed(3)}`)
                .join(" · ")}
            </p>
          )}
        </div>
      </div>
      {/* Full width: each rule's evidence, interval and detail need the room. */}
      <div>
          <h3 className="small">
            Promotion gate: <GateBadge version={version} />
          </h3>
          {stagedReason(version) && (
            <p className="small state state-warn" data-testid="gate-staged-reason">
              ◐ Not promoted automatically: {stagedReason(version)}
            </p>
          )}
          {rules.length === 0 ? (
            <Empty>Not gated: this version was registered by hand, not by a train job.</Empty>
          ) : (
            <div className="table-wrap" tabIndex={0} role="region" aria-label="Gate rules (scrolls sideways)">
            <table className="data compact gate-rules" aria-label="Gate rules">
              <thead>
                <tr>
                  <th scope="col">Rule</th>
                  <th scope="col">Verdict</th>
                  <th scope="col">Evidence</th>
                  <th scope="col" title="Candidate minus production mAP50: the point difference and its paired-bootstrap interval over images">
                    Difference (95% interval)
                  </th>
                  <th scope="col">Detail</th>
                </tr>
              </thead>
              <tbody>
                {rules.map((r) => (
                  <tr key={r.rule} data-testid="gate-rule">
                    <th scope="row">{r.rule}</th>
                    <td>
                      {r.skipped ? (
                        <span className="state state-muted">– {r.verdict ?? "skipped"}</span>
                      ) : r.passed ? (
                        <span className="state state-ok">✓ passed{r.verdict && ` (${r.verdict})`}</span>
                      ) : (
                        <span className="state state-alarm">✕ failed{r.verdict && ` (${r.verdict})`}</span>
                      )}
                    </td>
                    <td className="small" data-testid="gate-evidence">
                      <EvidenceCell rule={r} />
                    </td>
                    <td className="num small" data-testid="gate-interval">
                      {r.interval ? (
                        <span title={`${count(r.interval.resamples)} resamples`}>
                          {signed(r.interval.difference)} ({signed(r.interval.low)} to {signed(r.interval.high)})
                        </span>
                      ) : (
                        "–"
                      )}
                    </td>
                    <td className="small">{r.detail}</td>
                  </tr>
                ))}
              </tbody>
            </table>
            </div>
          )}
      </div>
      <h3 className="small">Alias history</h3>
      {history.length === 0 ? (
        <Empty>No alias was ever moved to this version.</Empty>
      ) : (
        <ul className="small" data-testid="alias-history">
          {history.map((h) => (
            <li key={`${h.what}${h.at}`}>
              {h.what} by <strong>{h.by}</strong> {h.at && <RelativeTime iso={h.at} />}: “{h.reason}”
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

type Action = { kind: "promote"; version: ModelVersion } | { kind: "rollback"; from: ModelVersion };

/** The reason (required) and, for a version whose gate failed, the explicit override. */
function ActionDialog({ action, onDone, onCancel }: { action: Action; onDone: (message: string) => void; onCancel: () => void }) {
  const queryClient = useQueryClient();
  const [reason, setReason] = useState("");
  const [force, setForce] = useState(false);
  const failedGate = action.kind === "promote" && action.version.gate_passed === false;
  const run = useMutation({
    mutationFn: () =>
      action.kind === "promote" ? api.promote(action.version.version, reason.trim(), force) : api.rollback(reason.trim()),
    onSuccess: (answer) => {
      void queryClient.invalidateQueries({ queryKey: ["models"] });
      void queryClient.invalidateQueries({ queryKey: ["labeling-stats"] });
      onDone(
        action.kind === "promote"
          ? `Version ${answer.version} is production now${force ? " (gate overridden)" : ""}.`
          : `Production rolled back from version ${action.from.version} to version ${answer.version}.`,
      );
    },
  });
  const title =
    action.kind === "promote" ? `Promote version ${action.version.version} to production?` : `Roll back production from version ${action.from.version}?`;
  return (
    <Confirm
      title={title}
      confirmLabel={action.kind === "promote" ? "Promote" : "Roll back"}
      confirmDisabled={!reason.trim() || (failedGate && !force) || run.isPending}
      onCancel={onCancel}
      onConfirm={() => run.mutate()}
    >
      <p>
        {action.kind === "promote"
          ? "Edge agents switch to it within seconds of their next model check."
          : "Production goes back to the version it held before; edge agents follow."}
      </p>
      <label>
        Reason (recorded with your name)
        <textarea value={reason} onChange={(e) => setReason(e.target.value)} maxLength={1000} required />
      </label>
      {failedGate && (
        <>
          <p className="note note-error">
            <strong>✕ This version failed its promotion gate:</strong> {action.version.tags["gate_summary"] ?? "see its gate report"}
          </p>
          <label className="check">
            <input type="checkbox" checked={force} onChange={(e) => setForce(e.target.checked)} /> Override the failed gate (force; recorded)
          </label>
        </>
      )}
      {run.isError && <ErrorNote what={action.kind === "promote" ? "Promoting" : "Rolling back"} error={run.error} />}
    </Confirm>
  );
}

function Models() {
  const params = useSearchParams();
  const router = useRouter();
  const user = useUser();
  const admin = mayAct(user, "admin");
  const models = useQuery({ queryKey: ["models"], queryFn: api.models, refetchInterval: EVERY_S * 1000 });
  const [action, setAction] = useState<Action | null>(null);
  const [result, setResult] = useState<string | null>(null);
  const versions = models.data;
  const production = versions?.find((v) => v.aliases.includes("production"));
  const selectedId = params.get("version") ?? production?.version ?? versions?.[0]?.version;
  const selected = versions?.find((v) => v.version === selectedId);

  return (
    <>
      <div className="page-head">
        <h1>Models</h1>
        {production && (
          <span data-testid="production">
            production: <strong>version {production.version}</strong>
          </span>
        )}
        {admin && production && (
          <button type="button" onClick={() => setAction({ kind: "rollback", from: production })}>
            Roll back production
          </button>
        )}
      </div>
      <Source paths={["/api/v1/models"]} updatedAt={models.dataUpdatedAt} everyS={EVERY_S} />
      {models.isError && <ErrorNote what="Loading the model registry" error={models.error} />}
      {result && (
        <p className="note" role="status" data-testid="action-result">
          {result}
        </p>
      )}
      {versions && versions.length > 0 && (
        <section className="charts" aria-label="Charts">
          <Map50Chart points={map50Points(versions)} />
        </section>
      )}
      <h2>Versions</h2>
      <div className="table-wrap">
        <table className="data" aria-label="Model versions">
          <thead>
            <tr>
              <th scope="col" className="num">Version</th>
              <th scope="col">Aliases</th>
              <th scope="col" className="num">Golden</th>
              <th scope="col" className="num">Recent</th>
              <th scope="col">Gate</th>
              <th scope="col">Train job</th>
              <th scope="col">Registered</th>
              {admin && <th scope="col">Actions</th>}
            </tr>
          </thead>
          <tbody>
            {versions === undefined
              ? [0, 1].map((i) => (
                  <tr key={i}>
                    {Array.from({ length: admin ? 8 : 7 }, (_, k) => (
                      <td key={k}>
                        <Skeleton />
                      </td>
                    ))}
                  </tr>
                ))
              : versions.map((v) => (
                  <tr
                    key={v.version}
                    className="clickable"
                    tabIndex={0}
                    aria-selected={v.version === selected?.version}
                    onClick={() => router.replace(`/models/?version=${v.version}`)}
                    onKeyDown={(e) => e.key === "Enter" && router.replace(`/models/?version=${v.version}`)}
                    data-testid={`version-${v.version}`}
                  >
                    <td className="num">{v.version}</td>
                    <td>
                      <Aliases version={v} />
                    </td>
                    <td className="num">{fixed(setMap50(v, "golden"), 3, "mAP50")}</td>
                    <td className="num">{fixed(setMap50(v, "recent"), 3, "mAP50")}</td>
                    <td>
                      <GateBadge version={v} />
                    </td>
                    <td onClick={(e) => e.stopPropagation()}>
                      {v.train_job_id !== null ? <Link href={`/jobs/?job=${v.train_job_id}`}>job {v.train_job_id}</Link> : <span className="muted">by hand</span>}
                    </td>
                    <td>
                      <RelativeTime iso={v.created_at} />
                    </td>
                    {admin && (
                      <td className="row-actions" onClick={(e) => e.stopPropagation()}>
                        {!v.aliases.includes("production") && (
                          <button type="button" onClick={() => setAction({ kind: "promote", version: v })}>
                            Promote
                          </button>
                        )}
                      </td>
                    )}
                  </tr>
                ))}
          </tbody>
        </table>
        {versions !== undefined && versions.length === 0 && (
          <Empty>No registered versions yet: `visionloop demo` registers the baseline, and each train job registers its candidate.</Empty>
        )}
      </div>
      {selected && <VersionPanel key={selected.version} version={selected} />}
      {action && (
        <ActionDialog
          action={action}
          onCancel={() => setAction(null)}
          onDone={(message) => {
            setAction(null);
            setResult(message);
          }}
        />
      )}
    </>
  );
}

export default function ModelsPage() {
  return (
    <Suspense fallback={<Skeleton height="40vh" />}>
      <Models />
    </Suspense>
  );
}
