"""Pipeline: every frame committed once, live sources drop oldest, swaps between frames."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import pytest

from support.edge import ArraySource, race_timings
from visionloop.edge.outbox import Outbox
from visionloop.edge.pipeline import Pipeline
from visionloop.edge.sampler import Sampler, SamplerConfig
from visionloop.types import FrameRecord
from visionloop.vision.backends import openvino_installed
from visionloop.vision.detector import Detector, load_detector
from visionloop.vision.sources import open_source


@pytest.fixture(scope="module")
def detector(edge_onnx: Path) -> Detector:
    return load_detector(edge_onnx, backend="onnxruntime", version="v1", threads=1)


@pytest.fixture
def outbox(tmp_path: Path) -> Outbox:
    box = Outbox(tmp_path / "outbox.db")
    yield box  # type: ignore[misc]
    box.close()


def records(outbox: Outbox) -> list[FrameRecord]:
    return [FrameRecord.model_validate_json(p.body) for p in outbox.peek(limit=100_000)]


def test_file_source_commits_every_frame_with_images_for_sampled(
    detector: Detector, outbox: Outbox
) -> None:
    source = ArraySource(40)
    sampler = Sampler(SamplerConfig(audit_rate=0.3, max_per_minute=10_000), seed=1)
    summary = Pipeline(source, detector, outbox, sampler, queue_size=2).run()
    assert summary.frames == 40 and summary.dropped == 0
    recs = records(outbox)
    assert len(recs) == 40 and len({r.id for r in recs}) == 40
    assert all(r.model_version == "v1" and (r.width, r.height) == (640, 480) for r in recs)
    # Capture order is kept, and each record carries the source's frame number.
    assert [r.captured_at for r in recs] == sorted(r.captured_at for r in recs)
    assert [r.source_index for r in recs] == list(range(40))
    sampled = [r for r in recs if r.sample_reason is not None]
    assert len(sampled) == summary.sampled_total > 0
    # Every sampled frame has its JPEG in the outbox (released for upload once acked).
    outbox.ack([str(r.id) for r in recs])
    images = outbox.peek_images(limit=1000)
    assert {i.record_id for i in images} == {str(r.id) for r in sampled}
    assert all(i.jpeg[:2] == b"\xff\xd8" for i in images)
    for stage in ("preprocess", "infer", "postprocess", "outbox", "total"):
        assert summary.latency_ms[stage] > 0


def test_max_frames_stops_exactly(detector: Detector, outbox: Outbox) -> None:
    source = ArraySource(100)
    summary = Pipeline(source, detector, outbox, Sampler(seed=0), max_frames=15).run()
    assert summary.frames == 15
    assert len(records(outbox)) == 15
    assert source.produced <= 15 + 1


def test_live_source_drops_oldest_and_counts(detector: Detector, outbox: Outbox) -> None:
    source = ArraySource(150, live=True)
    summary = Pipeline(source, detector, outbox, Sampler(seed=0), queue_size=2).run()
    assert summary.dropped > 0
    assert summary.frames + summary.dropped == 150
    assert len(records(outbox)) == summary.frames


def test_swap_takes_effect_between_frames(
    detector: Detector, edge_onnx: Path, outbox: Outbox
) -> None:
    second = load_detector(edge_onnx, backend="onnxruntime", version="v2", threads=1)
    pipeline: Pipeline

    def on_frame(n: int) -> None:
        if n == 10:
            pipeline.swap(second)

    pipeline = Pipeline(
        ArraySource(25), detector, outbox, Sampler(seed=0), on_frame=on_frame, queue_size=2
    )
    summary = pipeline.run()
    versions = [r.model_version for r in records(outbox)]
    # Committed frame 10 triggers the swap; frames already inferred ran v1 (at most the two
    # queues and the frame in hand), every later frame v2, never interleaved.
    switch = versions.index("v2")
    assert 10 <= switch <= 10 + 2 + 2 + 1
    assert versions == ["v1"] * switch + ["v2"] * (25 - switch)
    assert summary.versions == {"v1": switch, "v2": 25 - switch}
    assert pipeline.heartbeat().model_version == "v2"


def test_stop_from_another_thread_ends_promptly(detector: Detector, outbox: Outbox) -> None:
    pipeline = Pipeline(ArraySource(100_000), detector, outbox, Sampler(seed=0))
    timer = threading.Timer(0.5, pipeline.stop)
    timer.start()
    t0 = time.monotonic()
    summary = pipeline.run()
    assert time.monotonic() - t0 < 5
    assert 0 < summary.frames < 100_000
    assert len(records(outbox)) == summary.frames


def test_heartbeat_carries_metrics(detector: Detector, outbox: Outbox) -> None:
    pipeline = Pipeline(ArraySource(20), detector, outbox, Sampler(seed=0))
    pipeline.run()
    beat = pipeline.heartbeat(model_error="boom")
    assert beat.fps > 0
    assert beat.counters["frames"] == 20
    assert beat.model_error == "boom"
    assert "infer" in beat.latency_ms
    assert set(beat.queue_depths) == {"capture", "sink"}


def test_fps_limit_paces_a_file_source(detector: Detector, outbox: Outbox) -> None:
    t0 = time.monotonic()
    summary = Pipeline(ArraySource(12), detector, outbox, Sampler(seed=0), fps_limit=20).run()
    assert summary.frames == 12
    assert time.monotonic() - t0 >= 11 / 20 * 0.9


def test_fps_limit_thins_a_live_source_without_counting_drops(
    detector: Detector, outbox: Outbox
) -> None:
    pipeline = Pipeline(ArraySource(60, live=True), detector, outbox, Sampler(seed=0), fps_limit=5)
    summary = pipeline.run()
    # The source produced 60 frames at once: most are skipped by the limit, not dropped.
    assert pipeline.skipped >= 50
    assert summary.frames + summary.dropped + pipeline.skipped == 60


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux")
def test_capture_thread_runs_at_lower_priority_than_inference(
    detector: Detector, outbox: Outbox
) -> None:
    seen: list[int] = []

    class Probe(ArraySource):
        def __iter__(self):  # type: ignore[no-untyped-def]
            seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
            yield from super().__iter__()

    Pipeline(Probe(3), detector, outbox, Sampler(seed=0), side_thread_nice=7).run()
    assert seen == [os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) + 7]


def test_heartbeat_is_safe_while_other_threads_add_stages(
    detector: Detector, outbox: Outbox
) -> None:
    """The sink thread adds a stage (``encode``) at the first sampled frame; a heartbeat reading
    the timings at that moment must not fail (it used to raise RuntimeError: dictionary changed
    size during iteration, which killed the uploader thread)."""
    pipeline = Pipeline(ArraySource(8), detector, outbox, Sampler(SamplerConfig(), seed=0))
    racing = race_timings(pipeline)
    for _ in range(3):
        beat = pipeline.heartbeat()
        assert "capture" in beat.latency_ms
    assert racing.races >= 3
    # The stages the racing writers added are there in the next snapshot.
    assert {"racing-1", "racing-2"} <= set(pipeline.heartbeat().latency_ms)
    summary = pipeline.run()
    assert summary.frames == 8


@pytest.mark.skipif(not openvino_installed(), reason="needs the openvino extra")
def test_frames_in_flight_keep_capture_order_and_the_same_detections(
    edge_onnx: Path, tmp_path: Path
) -> None:
    """OpenVINO with 2 streams keeps two frames in inference at once: every frame is still
    committed, in capture order, with what one frame at a time finds."""
    found = []
    for streams in (1, 2):
        det = load_detector(
            edge_onnx, backend="openvino", precision="fp32", version="v1", streams=streams
        )
        assert det.depth == streams
        box = Outbox(tmp_path / f"outbox-{streams}.db")
        source = open_source("synthetic", seed=4, size_wh=(640, 480))
        sampler = Sampler(SamplerConfig(audit_rate=0.0), seed=1)
        summary = Pipeline(source, det, box, sampler, max_frames=12).run()
        recs = records(box)
        box.close()
        assert summary.frames == len(recs) == 12
        assert [r.captured_at for r in recs] == sorted(r.captured_at for r in recs)
        found.append([[(d.class_id, round(d.confidence, 3)) for d in r.detections] for r in recs])
    assert found[0] == found[1] and any(found[0])
