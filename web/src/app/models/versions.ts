// What the Models page shows of a registered version, read out of its gate report and tags
// (kept out of the components: they only render these).
import type { ModelVersion } from "@/api/client";

export type EvalSet = "golden" | "recent";
export const SETS: EvalSet[] = ["golden", "recent"];

export type Evidence = { set: string; images: number; boxes: Record<string, number> };
export type Interval = { difference: number; low: number; high: number; confidence: number; resamples: number };

export type GateRule = {
  rule: string;
  passed: boolean;
  skipped: boolean;
  detail: string;
  /** better / no worse / worse / not judged (recent), within / over budget (golden), … */
  verdict: string | null;
  evidence: Evidence | null;
  interval: Interval | null;
};

type Brief = { map50: number; map50_95: number; images: number };
type GateSet = { candidate: Brief | null; production: Brief | null; note?: string };

function record(value: unknown): Record<string, unknown> | null {
  return value && typeof value === "object" && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
}

/** The gate's rules, in its order; empty when the version was not gated. */
export function gateRules(version: ModelVersion): GateRule[] {
  const rules = version.gate?.["rules"];
  if (!Array.isArray(rules)) return [];
  return rules.flatMap((raw) => {
    const r = record(raw);
    if (!r || typeof r["rule"] !== "string") return [];
    const ev = record(r["evidence"]);
    const iv = record(r["interval"]);
    const boxes = record(ev?.["boxes"]) ?? {};
    return [
      {
        rule: r["rule"] + (typeof r["set"] === "string" ? ` (${r["set"]})` : ""),
        passed: r["passed"] === true,
        skipped: r["skipped"] === true,
        detail: String(r["detail"] ?? ""),
        verdict: typeof r["verdict"] === "string" ? r["verdict"] : null,
        evidence: ev
          ? {
              set: String(ev["set"] ?? ""),
              images: Number(ev["images"] ?? 0),
              boxes: Object.fromEntries(Object.entries(boxes).map(([k, v]) => [k, Number(v)])),
            }
          : null,
        interval:
          iv && typeof iv["low"] === "number" && typeof iv["high"] === "number"
            ? {
                difference: Number(iv["difference"] ?? 0),
                low: iv["low"],
                high: iv["high"],
                confidence: Number(iv["confidence"] ?? 0.95),
                resamples: Number(iv["resamples"] ?? 0),
              }
            : null,
      },
    ];
  });
}

/** Why a candidate that nothing failed was only staged (too little evidence, no better,
 * identical to production); null when it was promotable or failed. */
export function stagedReason(version: ModelVersion): string | null {
  const g = version.gate;
  return g && g["decision"] === "stage" && typeof g["reason"] === "string" ? g["reason"] : null;
}

/** The candidate's and production's evaluation on one set at gate time (null: not evaluated). */
export function gateSet(version: ModelVersion, set: EvalSet): GateSet | null {
  const s = record(record(version.gate?.["sets"])?.[set]);
  if (!s) return null;
  const brief = (v: unknown): Brief | null => {
    const b = record(v);
    return b && typeof b["map50"] === "number"
      ? { map50: b["map50"], map50_95: Number(b["map50_95"] ?? 0), images: Number(b["images"] ?? 0) }
      : null;
  };
  return {
    candidate: brief(s["candidate"]),
    production: brief(s["production"]),
    note: typeof s["note"] === "string" ? s["note"] : undefined,
  };
}

/** mAP50 of the version on a set: from its gate report, else (golden) its own metrics. */
export function setMap50(version: ModelVersion, set: EvalSet): number | null {
  const fromGate = gateSet(version, set)?.candidate?.map50;
  if (fromGate !== undefined) return fromGate;
  return set === "golden" ? (version.metrics["map50"] ?? null) : null;
}

export type Verdict = "passed" | "staging only" | "failed" | "not gated";

export function verdict(version: ModelVersion): Verdict {
  if (version.gate_passed === null) return "not gated";
  if (!version.gate_passed) return "failed";
  return stagedReason(version) !== null ? "staging only" : "passed";
}

/** Who moved an alias to this version, when and why (newest action first). */
export function aliasHistory(version: ModelVersion): { what: string; by: string; at: string; reason: string }[] {
  const out: { what: string; by: string; at: string; reason: string }[] = [];
  for (const [key, by] of Object.entries(version.tags)) {
    const m = /^(production|staging)\.(promoted|rolled_back)_by$/.exec(key);
    if (!m) continue;
    const prefix = `${m[1]}.${m[2]}`;
    out.push({
      what: `${m[2] === "promoted" ? "promoted to" : "rolled back to as"} ${m[1]}`,
      by,
      at: version.tags[`${prefix}_at`] ?? "",
      reason: version.tags[`${prefix}_reason`] ?? "",
    });
  }
  return out.sort((a, b) => b.at.localeCompare(a.at));
}

/** The chart's points: mAP50 on the golden set per version, oldest first. */
export function map50Points(versions: ModelVersion[]): { label: string; value: number | null; production: boolean }[] {
  return [...versions]
    .sort((a, b) => Number(a.version) - Number(b.version))
    .map((v) => ({ label: `v${v.version}`, value: setMap50(v, "golden"), production: v.aliases.includes("production") }));
}
