// Small hand-written SVG charts: each has a title, labelled axes with units, and says why it is empty.
import { count } from "@/lib/format";
import { Empty } from "./States";

/** Horizontal bars: detections per class over the window. */
export function ClassMix({ rows, windowLabel }: { rows: { name: string; value: number }[]; windowLabel: string }) {
  const max = Math.max(1, ...rows.map((r) => r.value));
  const total = rows.reduce((sum, r) => sum + r.value, 0);
  return (
    <figure className="chart" aria-labelledby="classmix-title">
      <figcaption id="classmix-title">Class mix: detections per class, last {windowLabel}</figcaption>
      {rows.length === 0 ? (
        <Empty>No detections in the last {windowLabel}.</Empty>
      ) : (
        <table className="bars">
          <tbody>
            {rows.map((r) => (
              <tr key={r.name}>
                <th scope="row">{r.name}</th>
                <td className="bar-cell">
                  <span className="bar" style={{ width: `${(100 * r.value) / max}%` }} />
                </td>
                <td className="num">
                  {count(r.value)} <span className="muted">({((100 * r.value) / Math.max(1, total)).toFixed(0)} %)</span>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </figure>
  );
}

const W = 360;
const H = 150;
const PAD = { left: 44, right: 16, top: 8, bottom: 34 };

/** Confidence histogram with the edge agent's default threshold marked. */
export function ConfidenceHistogram({
  edges,
  counts,
  threshold,
  windowLabel,
}: {
  edges: number[];
  counts: number[];
  threshold: number;
  windowLabel: string;
}) {
  const max = Math.max(1, ...counts);
  const total = counts.reduce((a, b) => a + b, 0);
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const x = (v: number) => PAD.left + v * plotW;
  const y = (v: number) => PAD.top + plotH - (v / max) * plotH;
  return (
    <figure className="chart" aria-labelledby="hist-title">
      <figcaption id="hist-title">Confidence of detections, last {windowLabel}</figcaption>
      {total === 0 ? (
        <Empty>No detections in the last {windowLabel}, so no confidences to show.</Empty>
      ) : (
        <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={`Histogram of ${count(total)} detection confidences`}>
          {counts.map((c, i) => {
            const lo = edges[i] ?? 0;
            const hi = edges[i + 1] ?? 1;
            return (
              <rect key={i} className="hist-bar" x={x(lo) + 0.5} width={Math.max(0, x(hi) - x(lo) - 1)} y={y(c)} height={PAD.top + plotH - y(c)}>
                <title>{`${lo.toFixed(2)}–${hi.toFixed(2)}: ${count(c)} detections`}</title>
              </rect>
            );
          })}
          <line className="axis" x1={PAD.left} x2={PAD.left + plotW} y1={PAD.top + plotH} y2={PAD.top + plotH} />
          <line className="axis" x1={PAD.left} x2={PAD.left} y1={PAD.top} y2={PAD.top + plotH} />
          {[0, 0.25, 0.5, 0.75, 1].map((t) => (
            <text key={t} className="tick" x={x(t)} y={PAD.top + plotH + 12} textAnchor="middle">
              {t.toFixed(2)}
            </text>
          ))}
          <text className="tick" x={PAD.left - 4} y={PAD.top + 8} textAnchor="end">
            {count(max)}
          </text>
          <text className="tick" x={PAD.left - 4} y={PAD.top + plotH} textAnchor="end">
            0
          </text>
          <line className="reference" x1={x(threshold)} x2={x(threshold)} y1={PAD.top} y2={PAD.top + plotH} />
          <text className="tick reference-label" x={x(threshold) + 3} y={PAD.top + 10}>
            threshold {threshold}
          </text>
          <text className="axis-label" x={PAD.left + plotW / 2} y={H - 4} textAnchor="middle">
            confidence (0–1)
          </text>
          <text className="axis-label" transform={`translate(11 ${PAD.top + plotH / 2}) rotate(-90)`} textAnchor="middle">
            detections
          </text>
        </svg>
      )}
    </figure>
  );
}

function clock(iso: string): string {
  return new Date(iso).toISOString().slice(11, 16);
}

/** Frames and detections per minute over the window, one point per bucket (UTC times). */
export function RateChart({
  points,
  bucketS,
  windowLabel,
}: {
  points: { start: string; frames_per_min: number; detections_per_min: number }[];
  bucketS: number;
  windowLabel: string;
}) {
  const total = points.reduce((sum, p) => sum + p.frames_per_min, 0);
  const max = Math.max(1, ...points.map((p) => Math.max(p.frames_per_min, p.detections_per_min)));
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const n = Math.max(1, points.length - 1);
  const x = (i: number) => PAD.left + (i / n) * plotW;
  const y = (v: number) => PAD.top + plotH - (v / max) * plotH;
  const path = (key: "frames_per_min" | "detections_per_min") =>
    points.map((p, i) => `${i === 0 ? "M" : "L"}${x(i).toFixed(1)},${y(p[key]).toFixed(1)}`).join(" ");
  const peak = points.reduce((best, p) => (p.frames_per_min > best.frames_per_min ? p : best), points[0] ?? { start: "", frames_per_min: 0, detections_per_min: 0 });
  const ticks = points.length > 1 ? [0, Math.floor(points.length / 2), points.length - 1] : [0];
  const bucket = bucketS >= 3600 ? `${bucketS / 3600} h` : `${bucketS / 60} min`;
  return (
    <figure className="chart" aria-labelledby="rate-title">
      <figcaption id="rate-title">
        Frames and detections per minute, last {windowLabel} <span className="muted small">(averaged over {bucket})</span>
      </figcaption>
      {total === 0 ? (
        <Empty>No frames captured in the last {windowLabel}.</Empty>
      ) : (
        <>
          <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={`Frames and detections per minute over the last ${windowLabel}`}>
            <line className="axis" x1={PAD.left} x2={PAD.left + plotW} y1={PAD.top + plotH} y2={PAD.top + plotH} />
            <line className="axis" x1={PAD.left} x2={PAD.left} y1={PAD.top} y2={PAD.top + plotH} />
            <path className="series series-frames" d={path("frames_per_min")} />
            <path className="series series-detections" d={path("detections_per_min")} />
            {ticks.map((i) => (
              <text key={i} className="tick" x={x(i)} y={PAD.top + plotH + 12} textAnchor="middle">
                {clock(points[i]?.start ?? "")}
              </text>
            ))}
            <text className="tick" x={PAD.left - 4} y={PAD.top + 8} textAnchor="end">
              {max.toFixed(max < 10 ? 1 : 0)}
            </text>
            <text className="tick" x={PAD.left - 4} y={PAD.top + plotH} textAnchor="end">
              0
            </text>
            <text className="axis-label" x={PAD.left + plotW / 2} y={H - 4} textAnchor="middle">
              capture time (UTC)
            </text>
            <text className="axis-label" transform={`translate(11 ${PAD.top + plotH / 2}) rotate(-90)`} textAnchor="middle">
              per minute
            </text>
          </svg>
          <p className="legend small">
            <span className="swatch swatch-frames" aria-hidden="true" /> frames/min{" "}
            <span className="swatch swatch-detections" aria-hidden="true" /> detections/min ·{" "}
            <span data-testid="rate-peak">
              peak {peak.frames_per_min.toFixed(1)} frames/min at {clock(peak.start)} UTC
            </span>
          </p>
        </>
      )}
    </figure>
  );
}

/** mAP50 on the golden set per registered version; the production version is marked. */
export function Map50Chart({ points }: { points: { label: string; value: number | null; production: boolean }[] }) {
  const known = points.filter((p) => p.value !== null);
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const n = Math.max(1, points.length - 1);
  const x = (i: number) => PAD.left + (points.length === 1 ? plotW / 2 : (i / n) * plotW);
  const y = (v: number) => PAD.top + plotH - v * plotH;
  const line = points
    .map((p, i) => (p.value === null ? null : `${x(i).toFixed(1)},${y(p.value).toFixed(1)}`))
    .filter((s): s is string => s !== null)
    .join(" ");
  const production = points.find((p) => p.production && p.value !== null);
  const labelStep = Math.max(1, Math.ceil(points.length / 10));
  return (
    <figure className="chart" aria-labelledby="map-title">
      <figcaption id="map-title">mAP50 on the golden set per version</figcaption>
      {known.length === 0 ? (
        <Empty>No version has a golden-set evaluation yet (a train job evaluates its candidate).</Empty>
      ) : (
        <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={`mAP50 of ${known.length} versions`}>
          <line className="axis" x1={PAD.left} x2={PAD.left + plotW} y1={PAD.top + plotH} y2={PAD.top + plotH} />
          <line className="axis" x1={PAD.left} x2={PAD.left} y1={PAD.top} y2={PAD.top + plotH} />
          {production && production.value !== null && (
            <>
              <line className="reference" x1={PAD.left} x2={PAD.left + plotW} y1={y(production.value)} y2={y(production.value)} />
              <text className="tick reference-label" x={PAD.left + 3} y={y(production.value) + (production.value > 0.85 ? 11 : -3)}>
                production {production.value.toFixed(3)}
              </text>
            </>
          )}
          <polyline className="series series-frames" points={line} />
          {points.map((p, i) =>
            p.value === null ? null : (
              <circle key={p.label} className={p.production ? "dot dot-production" : "dot"} cx={x(i)} cy={y(p.value)} r={p.production ? 4.5 : 3}>
                <title>{`${p.label}: ${p.value.toFixed(3)} mAP50${p.production ? " (production)" : ""}`}</title>
              </circle>
            ),
          )}
          {points.map((p, i) =>
            // At most ~10 version labels, the last always shown.
            i % labelStep === 0 || i === points.length - 1 ? (
              <text key={p.label} className="tick" x={x(i)} y={PAD.top + plotH + 12} textAnchor="middle">
                {p.label}
              </text>
            ) : null,
          )}
          {[0, 0.5, 1].map((t) => (
            <text key={t} className="tick" x={PAD.left - 4} y={y(t) + 3} textAnchor="end">
              {t.toFixed(1)}
            </text>
          ))}
          <text className="axis-label" x={PAD.left + plotW / 2} y={H - 4} textAnchor="middle">
            registered version
          </text>
          <text className="axis-label" transform={`translate(11 ${PAD.top + plotH / 2}) rotate(-90)`} textAnchor="middle">
            mAP50 (0–1)
          </text>
        </svg>
      )}
    </figure>
  );
}
