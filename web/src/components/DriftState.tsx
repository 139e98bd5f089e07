// One wording for one drift state on every page: the server names the state
// (DeviceDriftOut.state, DriftCheckOut.verdict); these components word it.
import type { DeviceDrift, DriftCheck } from "@/api/client";
import { RelativeTime } from "@/components/Time";

const INCONCLUSIVE_HINT = "Too few independent frames to judge (consecutive frames of a camera are correlated): not counted towards the alarm";

/** A device's drift: alarm open, drifted (no alarm yet), inconclusive, no drift, not checked. */
export function DriftState({ status }: { status: DeviceDrift }) {
  switch (status.state) {
    case "alarm":
      return (
        <span className="state state-alarm">
          <span aria-hidden="true">▲</span> alarm open <RelativeTime iso={status.since} />
        </span>
      );
    case "drifted":
      return (
        <span className="state state-warn" title="The latest check drifted; the alarm opens after enough drifted checks in a row">
          <span aria-hidden="true">△</span> drifted, no alarm yet
        </span>
      );
    case "inconclusive":
      return (
        <span className="state state-muted" title={status.last_check?.verdict_reason ?? INCONCLUSIVE_HINT}>
          <span aria-hidden="true">?</span> inconclusive
        </span>
      );
    case "clean":
      return (
        <span className="state state-ok">
          <span aria-hidden="true">✓</span> no drift
        </span>
      );
    default:
      return <span className="state state-muted">○ not checked yet</span>;
  }
}

/** One check's verdict, in the same words. */
export function CheckVerdict({ check }: { check: DriftCheck }) {
  if (check.verdict === "inconclusive")
    return (
      <span className="state state-muted" title={check.verdict_reason ?? INCONCLUSIVE_HINT}>
        <span aria-hidden="true">?</span> inconclusive
      </span>
    );
  if (check.verdict === "drifted")
    return (
      <span className="state state-alarm">
        <span aria-hidden="true">▲</span> drifted
      </span>
    );
  return (
    <span className="state state-ok">
      <span aria-hidden="true">✓</span> no drift
    </span>
  );
}

/** Where a check's reference came from, in words. */
export function referenceWords(check: DriftCheck): string {
  const version = check.reference_version ?? "?";
  switch (check.reference_kind) {
    case "model":
      return `profile of model version ${version}`;
    case "inherited":
      return `inherited from version ${version}`;
    case "auto":
      return `first frames with version ${version}`;
    default:
      return check.reference_kind;
  }
}
