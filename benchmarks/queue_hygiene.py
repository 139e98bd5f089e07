"""The labeling queue after an hour of one camera, with and without its hygiene (near-duplicates
counted instead of queued, the per-device cap, the age term), through the real routes and store.

    .venv/bin/python benchmarks/queue_hygiene.py [--minutes 60] [--fps 5] [--restart-at 30]
        [--size 320x240] [--json out.json]

One camera on the synthetic line (seed 0, nominal) for ``--minutes`` at ``--fps``; at minute
``--restart-at`` the agent restarts and the line replays from its first frame (what a restarted
``visionloop edge --source synthetic`` does). Detections come from the simulated detector of
``vision.synthetic.records`` (each defect its own confidence, 0.55 to 0.97, jittered by 0.02 a
frame: a defect with a confidence in the sampling band stays uncertain while it crosses the
view); the edge's own sampler (band 0.4 to 0.7, audit 1%, at most 60 a minute) picks the frames,
and each sampled frame and its JPEG (quality 90, as the agent encodes) go through ``POST
/ingest`` and ``PUT /frames/{id}/image`` of the real app on a fresh SQLite store. Nobody reviews:
the open tasks are what a reviewer would find. Run once with the hygiene off and once with the
settings' defaults (and with other duplicate thresholds, ``--also-bits``); prints open,
expired and duplicates for each.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from fastapi.testclient import TestClient

from visionloop.config import Settings
from visionloop.edge.sampler import Sampler, SamplerConfig
from visionloop.server.app import create_app
from visionloop.server.db import create_db_engine, write_engine
from visionloop.server.migrate import upgrade
from visionloop.vision.synthetic.line import SyntheticLine

CLASS_NAMES = ("scratch", "dent", "crack", "stain")
OFF = {
    "labeling_duplicate_bits": -1,
    "labeling_max_open_per_device": 0,
    "labeling_age_hours": 0.0,
}


def sampled_frames(
    minutes: float, fps: float, restart_at: float, size_wh: tuple[int, int]
) -> tuple[list[tuple[dict[str, Any], bytes]], int]:
    """The frames the edge's sampler uploads: (record, JPEG) each, and the frames seen."""
    line = SyntheticLine(seed=0, size_wh=size_wh)
    w, h = size_wh
    sampler = Sampler(SamplerConfig(), seed=0)
    rng = np.random.default_rng(0)
    t0 = datetime.now(UTC) - timedelta(minutes=minutes)
    total = round(minutes * 60 * fps)
    restart = round(restart_at * 60 * fps)
    out = []
    for k in range(total):
        index = k if k < restart else k - restart  # the restarted line replays from frame 0
        if k == restart:
            sampler = Sampler(SamplerConfig(), seed=1)
        scene = line.render(index)
        detections = []
        for box, class_id in zip(scene.xyxy, scene.class_id, strict=True):
            own = np.random.default_rng([0, int(class_id), round(float(box[1]) * 4)])
            confidence = float(own.uniform(0.55, 0.97) + rng.uniform(-0.02, 0.02))
            x1, y1, x2, y2 = (float(v) for v in box)
            detections.append(
                {
                    "class_id": int(class_id),
                    "class_name": CLASS_NAMES[int(class_id)],
                    "confidence": round(confidence, 4),
                    "xyxyn": [x1 / w, y1 / h, x2 / w, y2 / h],
                }
            )
        captured = t0 + timedelta(seconds=k / fps)
        confidences = np.asarray([d["confidence"] for d in detections], np.float32)
        reason = sampler.decide(confidences, captured)
        if reason is None:
            continue
        ok, jpeg = cv2.imencode(".jpg", scene.frame_bgr, [cv2.IMWRITE_JPEG_QUALITY, 90])
        assert ok
        record = {
            "id": str(uuid.uuid4()),
            "captured_at": captured.isoformat().replace("+00:00", "Z"),
            "model_version": "1",
            "width": w,
            "height": h,
            "stats": {"brightness": 0.5, "contrast": 0.2, "sharpness": 100.0},
            "detections": detections,
            "sample_reason": reason,
        }
        out.append((record, jpeg.tobytes()))
    return out, total


def run(frames: list[tuple[dict[str, Any], bytes]], overrides: dict[str, Any]) -> dict[str, Any]:
    """Feed ``frames`` to a fresh store with ``overrides`` of the settings; the queue after."""
    from visionloop.server.store import devices as device_store

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), database_url=f"sqlite:///{tmp}/vl.db")
        settings = settings.model_copy(update=overrides)
        engine = create_db_engine(settings.database_url, pool_size=1)
        upgrade(engine)
        from sqlalchemy.orm import Session

        with Session(write_engine(engine)) as session, session.begin():
            _, token = device_store.create_device(session, name="line1-cam1")
        engine.dispose()
        app = create_app(settings)
        started = time.perf_counter()
        with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as camera:
            for record, jpeg in frames:
                r = camera.post("/api/v1/ingest", json={"frames": [record]})
                assert r.status_code == 200, r.text
                r = camera.put(f"/api/v1/frames/{record['id']}/image", content=jpeg)
                assert r.status_code == 200, r.text
        seconds = time.perf_counter() - started
        from visionloop.server.store import labeling

        engine = create_db_engine(settings.database_url, pool_size=1)
        with Session(engine) as session:
            [queue] = labeling.device_queues(session)
        engine.dispose()
    return {
        "sampled": len(frames),
        "open": queue.open,
        "expired": queue.expired,
        "duplicates": queue.duplicates,
        "seconds": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--fps", type=float, default=5.0)
    parser.add_argument("--restart-at", type=float, default=30.0)
    parser.add_argument("--size", default="320x240")
    parser.add_argument(
        "--also-bits", default="", help="Comma-separated duplicate thresholds to run as well."
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    started = time.perf_counter()
    frames, total = sampled_frames(args.minutes, args.fps, args.restart_at, (w, h))
    print(f"{total:,} frames, {len(frames):,} sampled ({time.perf_counter() - started:.0f} s)")
    defaults = Settings()
    on = {
        "labeling_duplicate_bits": defaults.labeling_duplicate_bits,
        "labeling_max_open_per_device": defaults.labeling_max_open_per_device,
        "labeling_age_hours": defaults.labeling_age_hours,
    }
    results = {"off": run(frames, OFF), "on": run(frames, on)}
    for bits in (int(b) for b in args.also_bits.split(",") if b):
        results[f"on, {bits} bits"] = run(frames, on | {"labeling_duplicate_bits": bits})
    print("| hygiene | sampled | open tasks | expired | near-duplicates not queued |")
    print("|---|---|---|---|---|")
    for name, r in results.items():
        print(
            f"| {name} | {r['sampled']:,} | {r['open']:,} | {r['expired']:,} | "
            f"{r['duplicates']:,} |"
        )
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args) | {"json": None}, **results}))


if __name__ == "__main__":
    main()
