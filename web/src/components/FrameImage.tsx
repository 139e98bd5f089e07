// A frame's image with its detections drawn over it (read-only), in image pixels.
import type { FrameDetail } from "@/api/client";
import { classColor } from "./BoxEditor";

export function FrameImage({ frame }: { frame: FrameDetail }) {
  const { width, height } = frame;
  const font = Math.max(10, width / 42);
  return (
    <div className="canvas-frame frame-image" style={{ aspectRatio: `${width} / ${height}` }}>
      {frame.image_url ? (
        // eslint-disable-next-line @next/next/no-img-element -- a same-origin API image
        <img src={frame.image_url} alt={`Frame ${frame.id}`} />
      ) : (
        <p className="empty image-missing">No image stored for this frame (only sampled frames keep theirs).</p>
      )}
      <svg viewBox={`0 0 ${width} ${height}`} preserveAspectRatio="none" aria-hidden="true">
        {frame.detections.map((d, i) => {
          const [x1, y1, x2, y2] = [d.xyxyn[0] * width, d.xyxyn[1] * height, d.xyxyn[2] * width, d.xyxyn[3] * height];
          const color = classColor(d.class_id);
          return (
            <g key={i}>
              <rect x={x1} y={y1} width={x2 - x1} height={y2 - y1} className="box prediction" stroke={color} fill="transparent" vectorEffect="non-scaling-stroke" />
              <text x={x1 + 2} y={Math.max(font, y1 - 3)} fontSize={font} className="box-label" fill={color}>
                {d.class_name} {d.confidence.toFixed(2)}
              </text>
            </g>
          );
        })}
      </svg>
    </div>
  );
}
