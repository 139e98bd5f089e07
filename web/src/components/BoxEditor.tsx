"use client";
// The labeling canvas: the frame's image with an SVG of boxes over it, in image pixels (the SVG's
// viewBox is the image's size, so boxes stay crisp at any display size). Drag on the image to draw,
// drag a box to move it, drag a selected box's corner to resize it. Zoom with the wheel (at the
// pointer) or +/-/0; pan with Alt+drag or the middle button.
import { useEffect, useRef, useState, type PointerEvent as ReactPointerEvent } from "react";

export type Box = {
  key: number;
  classId: number;
  /** Corners [x1, y1, x2, y2] in image pixels. */
  xyxy: [number, number, number, number];
  /** "prediction": the model's box, untouched (dashed); "reviewer": drawn or edited (solid). */
  origin: "prediction" | "reviewer";
  confidence?: number;
};

const PALETTE = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#0f9fb4", "#d6409f", "#8a9a1b", "#9a6324", "#5c5cff"];
export function classColor(classId: number): string {
  return PALETTE[classId % PALETTE.length] ?? "#e6194b";
}

type Drag =
  | { kind: "draw"; start: [number, number] }
  | { kind: "move"; key: number; start: [number, number]; from: Box["xyxy"] }
  | { kind: "resize"; key: number; corner: number; from: Box["xyxy"] }
  | { kind: "pan"; client: [number, number]; from: View };

/** Zoom factor and the canvas's offset in screen pixels (transform: translate, then scale). */
type View = { z: number; x: number; y: number };
const NO_ZOOM: View = { z: 1, x: 0, y: 0 };
const MAX_ZOOM = 8;

/** Zoom by `factor` keeping the point (px, py) of the viewport, in screen pixels, in place. */
function zoomAt(view: View, factor: number, px: number, py: number): View {
  const z = clamp(view.z * factor, 1, MAX_ZOOM);
  if (z === 1) return NO_ZOOM;
  const k = z / view.z;
  return { z, x: px - (px - view.x) * k, y: py - (py - view.y) * k };
}

const MIN_SIDE = 3;

function clamp(v: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, v));
}

export function normalise(xyxy: Box["xyxy"], width: number, height: number): Box["xyxy"] {
  const [a, b, c, d] = xyxy;
  return [clamp(Math.min(a, c), 0, width), clamp(Math.min(b, d), 0, height), clamp(Math.max(a, c), 0, width), clamp(Math.max(b, d), 0, height)];
}

export function BoxEditor({
  imageUrl,
  width,
  height,
  boxes,
  selected,
  newClassId,
  classNames,
  onSelect,
  onChange,
  onImageLoad,
}: {
  imageUrl: string | null;
  width: number;
  height: number;
  boxes: Box[];
  selected: number | null;
  newClassId: number;
  classNames: Map<number, string>;
  onSelect: (key: number | null) => void;
  /** `commit`: the gesture ended (an undo step); otherwise a live preview while dragging. */
  onChange: (boxes: Box[], commit: boolean) => void;
  onImageLoad?: () => void;
}) {
  const svg = useRef<SVGSVGElement>(null);
  const drag = useRef<Drag | null>(null);
  const startBoxes = useRef<Box[]>(boxes);
  const nextKey = useRef(1_000_000);
  const [draft, setDraft] = useState<Box["xyxy"] | null>(null);
  const [view, setView] = useState<View>(NO_ZOOM);
  const frame = useRef<HTMLDivElement>(null);

  // The wheel zooms at the pointer (a non-passive listener, so the page does not scroll).
  useEffect(() => {
    const element = frame.current;
    if (!element) return;
    const onWheel = (event: WheelEvent) => {
      event.preventDefault();
      const rect = element.getBoundingClientRect();
      const factor = Math.exp(-event.deltaY * 0.0015);
      setView((v) => zoomAt(v, factor, event.clientX - rect.left, event.clientY - rect.top));
    };
    element.addEventListener("wheel", onWheel, { passive: false });
    return () => element.removeEventListener("wheel", onWheel);
  }, []);

  useEffect(() => {
    const onKey = (event: KeyboardEvent) => {
      const target = event.target;
      if (target instanceof HTMLElement && ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName)) return;
      if (event.ctrlKey || event.metaKey || event.altKey) return;
      const rect = frame.current?.getBoundingClientRect();
      const cx = (rect?.width ?? 0) / 2;
      const cy = (rect?.height ?? 0) / 2;
      if (event.key === "+" || event.key === "=") setView((v) => zoomAt(v, 1.25, cx, cy));
      else if (event.key === "-") setView((v) => zoomAt(v, 0.8, cx, cy));
      else if (event.key === "0") setView(NO_ZOOM);
      else return;
      event.preventDefault();
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, []);

  function toImage(event: ReactPointerEvent): [number, number] {
    const element = svg.current;
    const matrix = element?.getScreenCTM();
    if (!element || !matrix) return [0, 0];
    const point = new DOMPoint(event.clientX, event.clientY).matrixTransform(matrix.inverse());
    return [clamp(point.x, 0, width), clamp(point.y, 0, height)];
  }

  function begin(event: ReactPointerEvent, next: Drag) {
    event.stopPropagation();
    event.preventDefault();
    svg.current?.setPointerCapture(event.pointerId);
    drag.current = next;
    startBoxes.current = boxes;
  }

  function onPointerMove(event: ReactPointerEvent) {
    const d = drag.current;
    if (!d) return;
    if (d.kind === "pan") {
      setView({ z: d.from.z, x: d.from.x + event.clientX - d.client[0], y: d.from.y + event.clientY - d.client[1] });
      return;
    }
    const [x, y] = toImage(event);
    if (d.kind === "draw") {
      setDraft([d.start[0], d.start[1], x, y]);
      return;
    }
    const updated = startBoxes.current.map((box) => {
      if (box.key !== d.key) return box;
      const [x1, y1, x2, y2] = d.from;
      let xyxy: Box["xyxy"];
      if (d.kind === "move") {
        const dx = clamp(x - d.start[0], -x1, width - x2);
        const dy = clamp(y - d.start[1], -y1, height - y2);
        xyxy = [x1 + dx, y1 + dy, x2 + dx, y2 + dy];
      } else {
        // corners: 0 top-left, 1 top-right, 2 bottom-right, 3 bottom-left
        xyxy = [
          d.corner === 0 || d.corner === 3 ? x : x1,
          d.corner === 0 || d.corner === 1 ? y : y1,
          d.corner === 1 || d.corner === 2 ? x : x2,
          d.corner === 2 || d.corner === 3 ? y : y2,
        ];
        xyxy = normalise(xyxy, width, height);
      }
      return { ...box, xyxy, origin: "reviewer" as const };
    });
    onChange(updated, false);
  }

  function onPointerUp(event: ReactPointerEvent) {
    const d = drag.current;
    drag.current = null;
    svg.current?.releasePointerCapture(event.pointerId);
    if (!d || d.kind === "pan") return;
    if (d.kind === "draw") {
      setDraft(null);
      const [x, y] = toImage(event);
      const xyxy = normalise([d.start[0], d.start[1], x, y], width, height);
      if (xyxy[2] - xyxy[0] < MIN_SIDE || xyxy[3] - xyxy[1] < MIN_SIDE) return;
      const key = nextKey.current++;
      onChange([...boxes, { key, classId: newClassId, xyxy, origin: "reviewer" }], true);
      onSelect(key);
      return;
    }
    if (boxes !== startBoxes.current) onChange(boxes, true);
  }

  const fontSize = Math.max(10, width / 55);
  const handle = Math.max(5, width / 110);
  const drawn = selected === null ? boxes : [...boxes.filter((b) => b.key !== selected), ...boxes.filter((b) => b.key === selected)];
  return (
    <div
      ref={frame}
      className="canvas-frame"
      style={{ aspectRatio: `${width} / ${height}`, width: `min(100%, calc((100vh - 150px) * ${width / height}))` }}
    >
    <div className="canvas" style={{ transform: `translate(${view.x}px, ${view.y}px) scale(${view.z})` }}>
      {imageUrl ? (
        // eslint-disable-next-line @next/next/no-img-element -- a same-origin API image, not an asset
        <img src={imageUrl} alt="The frame to label" draggable={false} onLoad={onImageLoad} />
      ) : (
        <p className="empty">This frame has no stored image.</p>
      )}
      <svg
        ref={svg}
        viewBox={`0 0 ${width} ${height}`}
        preserveAspectRatio="none"
        data-testid="canvas"
        onPointerDown={(event) => {
          if (event.button === 1 || event.altKey) {
            begin(event, { kind: "pan", client: [event.clientX, event.clientY], from: view });
            return;
          }
          onSelect(null);
          begin(event, { kind: "draw", start: toImage(event) });
        }}
        onPointerMove={onPointerMove}
        onPointerUp={onPointerUp}
      >
        {drawn.map((box) => {
          const [x1, y1, x2, y2] = box.xyxy;
          const color = classColor(box.classId);
          const isSelected = box.key === selected;
          const name = classNames.get(box.classId) ?? `class ${box.classId}`;
          const label = box.origin === "prediction" && box.confidence !== undefined ? `${name} ${box.confidence.toFixed(2)}` : name;
          return (
            <g key={box.key} data-testid="box" data-origin={box.origin} data-class={box.classId}>
              <rect
                x={x1}
                y={y1}
                width={x2 - x1}
                height={y2 - y1}
                className={`box ${box.origin}${isSelected ? " selected" : ""}`}
                stroke={color}
                fill={isSelected ? `${color}22` : "transparent"}
                vectorEffect="non-scaling-stroke"
                onPointerDown={(event) => {
                  onSelect(box.key);
                  begin(event, { kind: "move", key: box.key, start: toImage(event), from: box.xyxy });
                }}
              />
              <text x={x1 + 2} y={Math.max(fontSize, y1 - 3)} fontSize={fontSize} className="box-label" fill={color}>
                {label}
              </text>
              {isSelected &&
                [
                  [x1, y1],
                  [x2, y1],
                  [x2, y2],
                  [x1, y2],
                ].map(([hx, hy], corner) => (
                  <rect
                    key={corner}
                    className="handle"
                    x={(hx ?? 0) - handle}
                    y={(hy ?? 0) - handle}
                    width={handle * 2}
                    height={handle * 2}
                    stroke={color}
                    vectorEffect="non-scaling-stroke"
                    onPointerDown={(event) => begin(event, { kind: "resize", key: box.key, corner, from: box.xyxy })}
                  />
                ))}
            </g>
          );
        })}
        {draft && (
          <rect
            className="box reviewer"
            x={Math.min(draft[0], draft[2])}
            y={Math.min(draft[1], draft[3])}
            width={Math.abs(draft[2] - draft[0])}
            height={Math.abs(draft[3] - draft[1])}
            stroke={classColor(newClassId)}
            fill="transparent"
            vectorEffect="non-scaling-stroke"
          />
        )}
      </svg>
    </div>
    {view.z > 1 && <span className="zoom-note">{Math.round(view.z * 100)} % · 0 resets</span>}
    </div>
  );
}
