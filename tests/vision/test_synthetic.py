"""The synthetic production line: determinism, exact boxes, drift, schedules, dataset writer."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from visionloop.cli import app
from visionloop.errors import InvalidInputError
from visionloop.vision.synthetic import (
    CLASS_NAMES,
    SCENARIOS,
    Drift,
    ScenarioSchedule,
    SyntheticLine,
    parse_schedule,
    write_dataset,
    write_video,
)
from visionloop.vision.synthetic.dataset import split_sizes
from visionloop.vision.synthetic.defects import VISIBLE_DELTA, DefectMark, draw_defect
from visionloop.vision.synthetic.line import _visible_box
from visionloop.vision.synthetic.parts import make_part
from visionloop.vision.synthetic.textures import make_textures


@pytest.fixture(scope="module")
def line() -> SyntheticLine:
    return SyntheticLine(seed=3)


def _independent_scenes(line: SyntheticLine, count: int) -> list:
    return [line.render(k * line.frames_per_view) for k in range(count)]


def _sharpness(frame: np.ndarray) -> float:
    return float(cv2.Laplacian(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var())


# --- determinism ---------------------------------------------------------------------------


def test_same_seed_same_frames_in_any_order(line: SyntheticLine) -> None:
    other = SyntheticLine(seed=3)
    late = other.render(900)  # fills the sprite cache with other parts first
    for index in (0, 1, 450, 900):
        a, b = line.render(index), other.render(index)
        assert np.array_equal(a.frame_bgr, b.frame_bgr)
        assert np.array_equal(a.xyxy, b.xyxy)
        assert np.array_equal(a.class_id, b.class_id)
    assert np.array_equal(late.frame_bgr, line.render(900).frame_bgr)


def test_different_seeds_differ(line: SyntheticLine) -> None:
    a, b = line.render(10), SyntheticLine(seed=4).render(10)
    assert np.abs(a.frame_bgr.astype(int) - b.frame_bgr.astype(int)).mean() > 5


def test_parts_move_along_the_belt(line: SyntheticLine) -> None:
    a, b = line.render(100), line.render(101)
    # Consecutive frames: the same defects, shifted right by the belt speed (those fully in view).
    inside = (a.xyxy[:, 0] > 20) & (a.xyxy[:, 2] < 600)
    shifted = a.xyxy[inside] + np.array([line.speed, 0, line.speed, 0], np.float32)
    for box in shifted:
        assert np.any(np.all(np.abs(b.xyxy - box) < 0.5, axis=1))


# --- ground truth --------------------------------------------------------------------------


def test_frame_and_box_formats(line: SyntheticLine) -> None:
    for scene in _independent_scenes(line, 20):
        assert scene.frame_bgr.shape == (480, 640, 3)
        assert scene.frame_bgr.dtype == np.uint8
        assert scene.xyxy.dtype == np.float32
        assert scene.class_id.dtype == np.int64
        assert scene.xyxy.shape == (len(scene.class_id), 4)
        x0, y0, x1, y1 = scene.xyxy.T
        assert np.all((x0 >= 0) & (y0 >= 0) & (x1 <= 640) & (y1 <= 480))
        assert np.all((x1 - x0 >= 3) & (y1 - y0 >= 3))
        assert set(scene.class_id.tolist()) <= set(range(len(CLASS_NAMES)))


def test_boxes_cover_defect_pixels(line: SyntheticLine) -> None:
    """Inside each box the image is far from flat: the defect's pixels stand out (in at least
    one colour channel: a stain may keep the brightness of the surface)."""
    for scene in _independent_scenes(line, 10):
        for x0, y0, x1, y1 in scene.xyxy.astype(int):
            patch = scene.frame_bgr[y0:y1, x0:x1].astype(np.int16)
            assert (patch.max(axis=(0, 1)) - patch.min(axis=(0, 1))).max() > 50


@pytest.mark.parametrize("class_id", range(4), ids=CLASS_NAMES)
def test_defect_box_is_tight_around_changed_pixels(class_id: int) -> None:
    rng = np.random.default_rng(class_id)
    for trial in range(10):
        sprite = np.full((140, 140, 3), 150, np.uint8)
        mask = np.zeros((140, 140), np.uint8)
        cv2.circle(mask, (70, 70), 60, 255, -1)
        before = sprite.copy()
        mark = draw_defect(class_id, 22, sprite, mask, (70 + trial, 68), rng)
        assert mark is not None
        changed = np.abs(sprite.astype(int) - before.astype(int)).max(axis=2) >= VISIBLE_DELTA
        rows, cols = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
        assert mark.box == (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)
        x0, y0, x1, y1 = mark.box
        assert np.array_equal(mark.pixels, changed[y0:y1, x0:x1])
        assert not np.any(changed & (mask == 0))  # nothing drawn off the part


def test_box_cut_by_frame_edge_is_tight_or_dropped() -> None:
    pixels = np.zeros((10, 20), bool)
    pixels[np.arange(10), np.arange(0, 20, 2)] = True  # a diagonal line, 10 pixels
    mark = DefectMark(class_id=0, box=(0, 0, 20, 10), pixels=pixels)
    assert _visible_box(mark, 100, 100, 640, 480) == (100.0, 100.0, 120.0, 110.0)
    # Half of it beyond the right edge: the box shrinks to the visible pixels.
    # (visible columns 630..639 hold the pixels at mark columns 0, 2, .., 8).
    assert _visible_box(mark, 630, 100, 640, 480) == (630.0, 100.0, 639.0, 105.0)
    # Only 2 of 10 pixels in view: dropped.
    assert _visible_box(mark, -16, 100, 640, 480) is None
    # Entirely out of view: dropped.
    assert _visible_box(mark, 700, 100, 640, 480) is None


def test_every_class_appears_and_some_parts_are_good(line: SyntheticLine) -> None:
    counts = np.zeros(len(CLASS_NAMES), int)
    for scene in _independent_scenes(line, 30):
        counts += np.bincount(scene.class_id, minlength=len(CLASS_NAMES))
    assert np.all(counts >= 10), counts
    textures = make_textures(np.random.default_rng(0))
    defects = [
        len(make_part(np.random.default_rng([0, i]), textures, 170).defects) for i in range(40)
    ]
    assert defects.count(0) >= 3
    assert max(defects) >= 3


def test_new_texture_keeps_the_defects() -> None:
    textures = make_textures(np.random.default_rng(0))
    for i in range(10):
        plain = make_part(np.random.default_rng([1, i]), textures, 170)
        drifted = make_part(np.random.default_rng([1, i]), textures, 170, new_texture=1.0)
        assert np.array_equal(plain.mask, drifted.mask)
        assert [d.class_id for d in plain.defects] == [d.class_id for d in drifted.defects]


# --- drift ---------------------------------------------------------------------------------


def _mean_stat(line: SyntheticLine, drift: Drift, stat) -> float:
    return float(
        np.mean(
            [stat(line.render(i * line.frames_per_view, drift=drift).frame_bgr) for i in (1, 2, 3)]
        )
    )


def _brightness(frame: np.ndarray) -> float:
    return float(frame.mean())


def _blue_over_red(frame: np.ndarray) -> float:
    return float(frame[..., 0].mean() / frame[..., 2].mean())


@pytest.mark.parametrize(
    ("scenario", "stat", "direction"),
    [
        ("lighting", _brightness, -1),
        ("lighting", _blue_over_red, -1),
        ("blur", _sharpness, -1),
        ("noise", _sharpness, +1),
        ("combined", _brightness, -1),
    ],
    ids=["lighting-darker", "lighting-warmer", "blur-softer", "noise-grainier",
         "combined-darker"],
)  # fmt: skip
def test_drift_moves_image_statistics(
    line: SyntheticLine, scenario: str, stat, direction: int
) -> None:
    values = [_mean_stat(line, Drift(scenario, t), stat) for t in (0.0, 0.5, 1.0)]
    signed = [direction * v for v in values]
    assert signed[0] < signed[1] < signed[2], values
    assert abs(values[2] - values[0]) > 0.15 * abs(values[0])


def test_new_texture_changes_part_surfaces(line: SyntheticLine) -> None:
    index = 2 * line.frames_per_view
    frames = [line.render(index, drift=Drift("new_texture", t)).frame_bgr for t in (0.0, 0.5, 1.0)]
    moved = [np.abs(f.astype(int) - frames[0].astype(int)).mean() for f in frames[1:]]
    assert 2.0 < moved[0] < moved[1]
    assert _sharpness(frames[2]) > 1.05 * _sharpness(frames[0])  # pits and veins


@pytest.mark.parametrize("scenario", ["lighting", "blur", "noise"])
def test_frame_level_drift_keeps_ground_truth(line: SyntheticLine, scenario: str) -> None:
    nominal = line.render(200, drift=Drift("nominal", 0.0))
    drifted = line.render(200, drift=Drift(scenario, 1.0))
    assert np.array_equal(nominal.xyxy, drifted.xyxy)
    assert np.array_equal(nominal.class_id, drifted.class_id)


def test_schedule_drives_the_frames() -> None:
    line = SyntheticLine(seed=3, schedule="blur:1.0@100+50")
    reference = SyntheticLine(seed=3)
    assert np.array_equal(line.render(99).frame_bgr, reference.render(99).frame_bgr)
    assert np.array_equal(
        line.render(125).frame_bgr, reference.render(125, drift=Drift("blur", 0.5)).frame_bgr
    )
    assert _sharpness(line.render(160).frame_bgr) < 0.5 * _sharpness(
        reference.render(160).frame_bgr
    )


# --- schedules -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("nominal", ScenarioSchedule("nominal", 1.0, 0, 0)),
        ("lighting:0.8", ScenarioSchedule("lighting", 0.8, 0, 0)),
        ("blur:1.0@300+200", ScenarioSchedule("blur", 1.0, 300, 200)),
        ("noise@100", ScenarioSchedule("noise", 1.0, 100, 0)),
        (" new_texture:0.25@0+10 ", ScenarioSchedule("new_texture", 0.25, 0, 10)),
        ("combined:1", ScenarioSchedule("combined", 1.0, 0, 0)),
    ],
)
def test_parse_valid_schedules(spec: str, expected: ScenarioSchedule) -> None:
    assert parse_schedule(spec) == expected
    assert parse_schedule(str(expected)) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "expected NAME"),
        ("fog", "unknown scenario 'fog'"),
        ("Blur", "expected NAME"),
        ("blur:strong", "bad intensity"),
        ("blur:1.5", "0..1"),
        ("blur:-0.1", "0..1"),
        ("blur:nan", "bad intensity"),
        ("blur:1.0@", "expected NAME"),
        ("blur:1.0@ten", "bad start frame"),
        ("blur:1.0@-5", "bad start frame"),
        ("blur:1.0@300+", "expected NAME"),
        ("blur:1.0@300+2.5", "bad ramp length"),
        ("blur:1.0@300+200+5", "bad ramp length"),
    ],
)
def test_parse_invalid_schedules(spec: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        parse_schedule(spec)


def test_schedule_ramps_over_time() -> None:
    schedule = parse_schedule("blur:0.8@300+200")
    assert schedule.at(0) == Drift("nominal", 0.0)
    assert schedule.at(299).is_nominal
    assert schedule.at(400) == Drift("blur", pytest.approx(0.4))
    assert schedule.at(500) == Drift("blur", pytest.approx(0.8))
    assert schedule.at(10_000) == Drift("blur", pytest.approx(0.8))
    assert parse_schedule("noise:0.5@10").at(10) == Drift("noise", 0.5)
    assert set(SCENARIOS) == {"nominal", "lighting", "blur", "noise", "new_texture", "combined"}


@pytest.mark.parametrize(
    "kwargs",
    [{"seed": -1}, {"size_wh": (100, 50)}, {"schedule": "fog"}],
    ids=["negative-seed", "tiny-frame", "bad-schedule"],
)
def test_line_rejects_bad_arguments(kwargs: dict) -> None:
    with pytest.raises(InvalidInputError):
        SyntheticLine(**kwargs)


def test_render_rejects_negative_index(line: SyntheticLine) -> None:
    with pytest.raises(InvalidInputError, match="non-negative"):
        line.render(-1)


def test_other_frame_sizes() -> None:
    scene = SyntheticLine(seed=0, size_wh=(1280, 720)).render(5)
    assert scene.frame_bgr.shape == (720, 1280, 3)
    assert np.all(scene.xyxy[:, 2] <= 1280) and np.all(scene.xyxy[:, 3] <= 720)


# --- dataset writer ------------------------------------------------------------------------


def _read_labels(path: Path) -> list[list[float]]:
    return [[float(v) for v in line.split()] for line in path.read_text().splitlines()]


def test_write_dataset_layout_and_labels(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    data_yaml = write_dataset(out, n=12, seed=5)
    assert data_yaml == out / "data.yaml"
    text = data_yaml.read_text()
    assert f'path: "{out.resolve()}"' in text
    for key in ("train: images/train", "val: images/val", "test: images/test", "nc: 4"):
        assert key in text
    for i, name in enumerate(CLASS_NAMES):
        assert f"  {i}: {name}" in text
    counts = {}
    labelled = 0
    for split in ("train", "val", "test"):
        images = sorted((out / "images" / split).iterdir())
        labels = sorted((out / "labels" / split).iterdir())
        assert [p.stem for p in images] == [p.stem for p in labels]
        counts[split] = len(images)
        for image, label in zip(images, labels, strict=True):
            assert image.suffix == ".jpg"
            frame = cv2.imread(str(image))
            assert frame.shape == (480, 640, 3)
            for row in _read_labels(label):
                labelled += 1
                assert len(row) == 5
                assert row[0] in (0, 1, 2, 3)
                xc, yc, w, h = row[1:]
                assert 0 < w <= 1 and 0 < h <= 1
                assert xc - w / 2 + 1e-6 >= 0 and xc + w / 2 <= 1 + 1e-6
                assert yc - h / 2 + 1e-6 >= 0 and yc + h / 2 <= 1 + 1e-6
    assert counts == {"train": 10, "val": 1, "test": 1}
    assert labelled > 12


def test_write_dataset_matches_the_line(tmp_path: Path) -> None:
    """Labels are the scenes' boxes, normalised: frame k is line frame k * frames_per_view."""
    out = tmp_path / "ds"
    write_dataset(out, n=3, seed=2, splits=(1.0, 0.0, 0.0), image_format="png")
    line = SyntheticLine(seed=2)
    for k in range(3):
        scene = line.render(k * line.frames_per_view)
        image = cv2.imread(str(out / "images" / "train" / f"{k:06d}.png"))
        assert np.array_equal(image, scene.frame_bgr)  # png is lossless
        rows = np.array(_read_labels(out / "labels" / "train" / f"{k:06d}.txt")).reshape(-1, 5)
        assert np.array_equal(rows[:, 0], scene.class_id)
        xyxy = np.stack(
            [rows[:, 1] - rows[:, 3] / 2, rows[:, 2] - rows[:, 4] / 2,
             rows[:, 1] + rows[:, 3] / 2, rows[:, 2] + rows[:, 4] / 2], axis=1
        ) * [640, 480, 640, 480]  # fmt: skip
        assert np.allclose(xyxy, scene.xyxy, atol=0.01)


def test_write_dataset_is_deterministic(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    write_dataset(a, n=5, seed=9, scenario="noise:0.5")
    write_dataset(b, n=5, seed=9, scenario="noise:0.5")
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file() and p.name != "data.yaml")
    assert len(files) == 10
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes()


def test_write_dataset_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(InvalidInputError, match="not an empty folder"):
        write_dataset(tmp_path, n=3)
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


@pytest.mark.parametrize(
    ("n", "fractions", "expected"),
    [
        (2000, (0.8, 0.1, 0.1), [1600, 200, 200]),
        (12, (0.8, 0.1, 0.1), [10, 1, 1]),
        (3, (0.8, 0.1, 0.1), [1, 1, 1]),
        (5, (1.0, 0.0, 0.0), [5, 0, 0]),
    ],
)
def test_split_sizes(n: int, fractions: tuple[float, float, float], expected: list[int]) -> None:
    assert split_sizes(n, fractions) == expected


@pytest.mark.parametrize(
    ("n", "fractions", "message"),
    [
        (2, (0.8, 0.1, 0.1), "at least 3"),
        (10, (0.5, 0.2, 0.2), "sum to 1"),
        (10, (1.2, -0.1, -0.1), "0..1"),
    ],
)
def test_split_sizes_rejects(n: int, fractions: tuple[float, float, float], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        split_sizes(n, fractions)


def test_cli_synth_dataset(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "ds"
    result = runner.invoke(app, ["synth", "dataset", str(out), "--n", "4", "--seed", "1",
                                 "--scenario", "lighting:0.5", "--format", "png"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "data.yaml" in result.output
    assert len(list((out / "images").rglob("*.png"))) == 4
    assert "scenario lighting:0.5" in (out / "data.yaml").read_text()
    bad = runner.invoke(app, ["synth", "dataset", str(tmp_path / "x"), "--scenario", "fog"])
    assert bad.exit_code == 2
    assert "unknown scenario 'fog'" in bad.output
    assert not (tmp_path / "x").exists()


# --- video writer --------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".avi", ".mp4"])
def test_write_video_plays_back_the_line(tmp_path: Path, suffix: str) -> None:
    path = write_video(tmp_path / f"episode{suffix}", frames=8, scenario="lighting:1@4", seed=2)
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    assert len(frames) == 8
    line = SyntheticLine(seed=2, schedule="lighting:1@4")
    for index in (0, 7):
        expected = line.render(index).frame_bgr.astype(float)
        assert np.abs(frames[index].astype(float) - expected).mean() < 6  # codec loss only
    assert frames[7].mean() < 0.8 * frames[3].mean()  # the lamp failed at frame 4


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [("x.mkv", {}, r"\.avi or \.mp4"), ("x.avi", {"frames": 0}, "at least 1"),
     ("x.avi", {"fps": 0}, "fps")],
)  # fmt: skip
def test_write_video_rejects(tmp_path: Path, name: str, kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        write_video(tmp_path / name, **{"frames": 2, **kwargs})


def test_cli_synth_video(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["synth", "video", str(tmp_path / "v.avi"), "--frames", "3", "--width", "320",
              "--height", "240"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    capture = cv2.VideoCapture(str(tmp_path / "v.avi"))
    assert capture.get(cv2.CAP_PROP_FRAME_COUNT) == 3
    assert capture.get(cv2.CAP_PROP_FRAME_WIDTH) == 320
    capture.release()
