"use client";
import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { mayAct, type LabelIn, type Lease } from "@/api/client";
import { BoxEditor, classColor, normalise, type Box } from "@/components/BoxEditor";
import { useUser } from "@/components/Session";
import { Empty, ErrorNote, Skeleton } from "@/components/States";
import { RelativeTime } from "@/components/Time";
import { useReviewQueue } from "./queue";

const SHORTCUTS: [string, string][] = [
  ["1 – 9", "class of the selected box (and of the next one you draw)"],
  ["drag on the image", "draw a box"],
  ["N or Enter", "submit the labels and go to the next task"],
  ["S", "skip: the frame cannot be labeled (asks why)"],
  ["Del or Backspace", "delete the selected box"],
  ["Ctrl+Z", "undo"],
  ["Tab / Shift+Tab", "select the next / previous box (when no control has the focus)"],
  ["arrows (Shift: ×10)", "nudge the selected box by 1 px"],
  ["+ / − / 0", "zoom in / out / reset (or the mouse wheel, at the pointer)"],
  ["Alt+drag or middle button", "pan the zoomed image"],
  ["Esc", "deselect; close this help"],
  ["?", "show or hide this help"],
];

function boxesOf(lease: Lease): Box[] {
  const { width, height, predictions } = lease.task;
  return predictions.map((p, i) => ({
    key: i,
    classId: p.class_id,
    xyxy: [p.xyxyn[0] * width, p.xyxyn[1] * height, p.xyxyn[2] * width, p.xyxyn[3] * height],
    origin: "prediction",
    confidence: p.confidence,
  }));
}

function labelsOf(boxes: Box[], width: number, height: number): LabelIn[] {
  return boxes
    .map((b) => normalise(b.xyxy, width, height))
    .map((xyxy, i) => ({
      class_id: boxes[i]?.classId ?? 0,
      xyxyn: [xyxy[0] / width, xyxy[1] / height, xyxy[2] / width, xyxy[3] / height] as [number, number, number, number],
    }))
    .filter((l) => l.xyxyn[2] > l.xyxyn[0] && l.xyxyn[3] > l.xyxyn[1]);
}

function isTyping(target: EventTarget | null): boolean {
  return target instanceof HTMLElement && (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));
}

function Reviewer() {
  const queue = useReviewQueue(true);
  const lease = queue.state.kind === "task" ? queue.state.lease : null;
  const [boxes, setBoxes] = useState<Box[]>([]);
  const [history, setHistory] = useState<Box[][]>([]);
  const [selected, setSelected] = useState<number | null>(null);
  const [newClassId, setNewClassId] = useState(0);
  const [help, setHelp] = useState(false);
  const [skipping, setSkipping] = useState(false);
  const skipInput = useRef<HTMLInputElement>(null);

  useEffect(() => {
    setBoxes(lease ? boxesOf(lease) : []);
    setHistory([]);
    setSelected(null);
  }, [lease]);

  // An empty queue is checked again every 10 s (not while the tab is hidden).
  useEffect(() => {
    if (queue.state.kind !== "empty") return;
    const id = window.setInterval(() => {
      if (document.visibilityState === "visible") queue.resume();
    }, 10_000);
    return () => window.clearInterval(id);
  }, [queue]);

  const classes = useMemo(() => lease?.classes ?? [], [lease]);
  const classNames = useMemo(() => new Map(classes.map((c) => [c.id, c.name])), [classes]);

  const change = useCallback(
    (next: Box[], commit: boolean) => {
      if (commit) setHistory((h) => [...h.slice(-99), boxes]);
      setBoxes(next);
    },
    [boxes],
  );
  // A drag previews without an undo step; its start is recorded when it commits.
  const dragStart = useRef<Box[] | null>(null);
  const onEditorChange = useCallback(
    (next: Box[], commit: boolean) => {
      if (!commit) {
        if (dragStart.current === null) dragStart.current = boxes;
        setBoxes(next);
        return;
      }
      const before = dragStart.current ?? boxes;
      dragStart.current = null;
      setHistory((h) => [...h.slice(-99), before]);
      setBoxes(next);
    },
    [boxes],
  );

  const submit = useCallback(() => {
    if (!lease) return;
    queue.submit(labelsOf(boxes, lease.task.width, lease.task.height));
  }, [lease, boxes, queue]);

  const pickClass = useCallback(
    (index: number) => {
      const cls = classes[index];
      if (!cls) return;
      setNewClassId(cls.id);
      if (selected !== null) {
        change(
          boxes.map((b) => (b.key === selected ? { ...b, classId: cls.id, origin: "reviewer" as const } : b)),
          true,
        );
      }
    },
    [classes, selected, boxes, change],
  );

  useEffect(() => {
    function onKey(event: KeyboardEvent) {
      if (isTyping(event.target) || skipping) return;
      const key = event.key;
      if (key === "?") {
        setHelp((h) => !h);
      } else if (key === "Escape") {
        setHelp(false);
        setSelected(null);
      } else if (!lease) {
        return;
      } else if ((event.ctrlKey || event.metaKey) && key.toLowerCase() === "z") {
        const last = history[history.length - 1];
        if (last) {
          setBoxes(last);
          setHistory(history.slice(0, -1));
        }
      } else if (event.ctrlKey || event.metaKey || event.altKey) {
        return;
      } else if (/^[1-9]$/.test(key)) {
        pickClass(Number(key) - 1);
      } else if (key === "n" || key === "N" || key === "Enter") {
        submit();
      } else if (key === "s" || key === "S") {
        setSkipping(true);
      } else if ((key === "Delete" || key === "Backspace") && selected !== null) {
        change(
          boxes.filter((b) => b.key !== selected),
          true,
        );
        setSelected(null);
      } else if (key === "Tab" && boxes.length > 0 && document.activeElement === document.body) {
        const at = boxes.findIndex((b) => b.key === selected);
        const step = event.shiftKey ? -1 : 1;
        const next = boxes[(at + step + boxes.length) % boxes.length];
        setSelected(next?.key ?? null);
      } else if (key.startsWith("Arrow") && selected !== null) {
        const d = event.shiftKey ? 10 : 1;
        const [dx, dy] = { ArrowLeft: [-d, 0], ArrowRight: [d, 0], ArrowUp: [0, -d], ArrowDown: [0, d] }[key] ?? [0, 0];
        const { width, height } = lease.task;
        change(
          boxes.map((b) => {
            if (b.key !== selected) return b;
            const [x1, y1, x2, y2] = b.xyxy;
            const mx = Math.min(Math.max(dx ?? 0, -x1), width - x2);
            const my = Math.min(Math.max(dy ?? 0, -y1), height - y2);
            return { ...b, xyxy: [x1 + mx, y1 + my, x2 + mx, y2 + my], origin: "reviewer" as const };
          }),
          true,
        );
      } else {
        return;
      }
      event.preventDefault();
    }
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [lease, boxes, history, selected, skipping, submit, pickClass, change]);

  useEffect(() => {
    if (skipping) skipInput.current?.focus();
  }, [skipping]);

  const task = lease?.task;
  return (
    <div className="review">
      <div className="review-stage">
        {queue.error && <ErrorNote what={queue.error.what} error={queue.error.error} />}
        {queue.state.kind === "loading" && <Skeleton height="60vh" />}
        {queue.state.kind === "empty" && (
          <div className="card review-message" data-testid="queue-empty">
            <h2>Nothing to label</h2>
            <p>The review queue is empty. It is checked again every 10 s; frames arrive as edge agents sample them.</p>
            <button type="button" onClick={queue.resume}>
              Check now
            </button>
          </div>
        )}
        {queue.state.kind === "paused" && (
          <div className="card review-message">
            <h2>Paused</h2>
            <p>Your tasks went back to the queue for others.</p>
            <button type="button" className="primary" onClick={queue.resume}>
              Continue labeling
            </button>
          </div>
        )}
        {task && (
          <BoxEditor
            key={task.id}
            imageUrl={task.image_url}
            width={task.width}
            height={task.height}
            boxes={boxes}
            selected={selected}
            newClassId={newClassId}
            classNames={classNames}
            onSelect={setSelected}
            onChange={onEditorChange}
          />
        )}
      </div>

      <aside className="review-side" aria-label="Task">
        {task ? (
          <>
            <h1>
              Task <span data-testid="task-id">{task.id}</span>
            </h1>
            <p>
              <span className="badge reason" data-testid="reason">
                {task.reason}
              </span>{" "}
              <span className="muted small">
                priority {task.priority.toFixed(2)} · model {task.model_version}
              </span>
            </p>
            <p className="muted small">
              Lease ends <RelativeTime iso={task.lease_expires_at} /> · frame <code title={task.frame_id}>{task.frame_id.slice(0, 8)}</code> ·{" "}
              {task.width}×{task.height} px
            </p>
            <p className="muted small" title="Why the frame was chosen">
              {task.predictions.length === 0
                ? "The model found nothing here."
                : `Model: ${task.predictions.map((p) => `${p.class_name} ${p.confidence.toFixed(2)}`).join(", ")}`}
            </p>

            <h2>Classes</h2>
            {classes.length === 0 && (
              <p className="note note-error">
                ⚠ No classes yet: they come from the production model, or an admin adds them (<code>POST /api/v1/classes</code>).
              </p>
            )}
            <ol className="classes">
              {classes.map((c, i) => (
                <li key={c.id}>
                  <button
                    type="button"
                    className={c.id === newClassId ? "class-pick active" : "class-pick"}
                    onClick={() => pickClass(i)}
                    aria-pressed={c.id === newClassId}
                  >
                    <span className="swatch" style={{ background: classColor(c.id) }} />
                    {i < 9 && <kbd>{i + 1}</kbd>} {c.name}
                  </button>
                </li>
              ))}
            </ol>

            <h2>
              Boxes <span className="muted small">({boxes.length})</span>
            </h2>
            {boxes.length === 0 ? (
              <Empty>No boxes: submitting says the frame shows nothing to label.</Empty>
            ) : (
              <ul className="box-list">
                {boxes.map((b) => (
                  <li key={b.key} className={b.key === selected ? "selected" : undefined}>
                    <button type="button" className="link" onClick={() => setSelected(b.key)}>
                      <span className="swatch" style={{ background: classColor(b.classId) }} />
                      {classNames.get(b.classId) ?? `class ${b.classId}`}
                    </button>{" "}
                    <span className="muted small">{b.origin === "prediction" ? `model ${b.confidence?.toFixed(2) ?? ""}` : "yours"}</span>
                  </li>
                ))}
              </ul>
            )}
            <p className="muted small legend">
              <span>
                <span className="legend-dash" /> model&apos;s box (kept unless deleted)
              </span>
              <span>
                <span className="legend-solid" /> drawn or edited by you
              </span>
            </p>

            <div className="actions">
              <button type="button" className="primary" onClick={submit} data-testid="submit">
                Submit and next <kbd>N</kbd>
              </button>
              <button type="button" onClick={() => setSkipping(true)}>
                Skip <kbd>S</kbd>
              </button>
              <button type="button" onClick={() => void queue.release()}>
                Release and pause
              </button>
            </div>
          </>
        ) : (
          queue.state.kind === "loading" && <Skeleton height="12em" />
        )}
        <p className="muted small session-count">
          Submitted this session: <strong data-testid="done-count">{queue.done}</strong> ·{" "}
          <button type="button" className="link" onClick={() => setHelp(true)}>
            shortcuts <kbd>?</kbd>
          </button>
        </p>
      </aside>

      {skipping && (
        <div className="overlay" role="dialog" aria-modal="true" aria-labelledby="skip-title">
          <form
            className="card"
            onSubmit={(event) => {
              event.preventDefault();
              const reason = skipInput.current?.value.trim() || "cannot be labeled";
              setSkipping(false);
              void queue.skip(reason);
            }}
            onKeyDown={(event) => {
              if (event.key === "Escape") setSkipping(false);
            }}
          >
            <h2 id="skip-title">Skip this frame</h2>
            <label>
              Why can it not be labeled?{" "}
              <input ref={skipInput} name="reason" defaultValue="cannot be labeled" maxLength={500} />
            </label>
            <div className="actions">
              <button type="submit" className="primary">
                Skip
              </button>
              <button type="button" onClick={() => setSkipping(false)}>
                Cancel
              </button>
            </div>
          </form>
        </div>
      )}

      {help && (
        <div className="overlay" role="dialog" aria-modal="true" aria-labelledby="help-title" onClick={() => setHelp(false)}>
          <div className="card" onClick={(event) => event.stopPropagation()}>
            <h2 id="help-title">Keyboard shortcuts</h2>
            <table className="data compact">
              <tbody>
                {SHORTCUTS.map(([keys, what]) => (
                  <tr key={keys}>
                    <th scope="row">
                      <kbd>{keys}</kbd>
                    </th>
                    <td>{what}</td>
                  </tr>
                ))}
              </tbody>
            </table>
            <p className="muted small">Drag a box to move it; drag a selected box&apos;s corner to resize it.</p>
            <button type="button" onClick={() => setHelp(false)}>
              Close <kbd>Esc</kbd>
            </button>
          </div>
        </div>
      )}
    </div>
  );
}

export default function ReviewPage() {
  const user = useUser();
  if (user === undefined) return <Skeleton height="60vh" />;
  if (!mayAct(user, "reviewer")) {
    return (
      <div className="card review-message">
        <h1>Review</h1>
        <p>
          Labeling needs the reviewer or admin role; you are signed in as a {user.role}. An admin can change it with{" "}
          <code>visionloop users add</code>.
        </p>
      </div>
    );
  }
  return <Reviewer />;
}
