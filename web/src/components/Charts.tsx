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
