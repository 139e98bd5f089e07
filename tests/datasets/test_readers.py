"""Reading YOLO, COCO and VOC datasets: every box of a synthetic dataset comes back, in each of
the layouts the importer takes, and a bad file is a problem for that file only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from support.datasets import TruthImage, synthetic_yolo, to_coco, to_voc
from visionloop.datasets.coco import read_coco
from visionloop.datasets.labels import FileProblem, LabeledImage, Source
from visionloop.datasets.voc import read_voc
from visionloop.datasets.yolo import read_yolo
from visionloop.errors import InvalidInputError
from visionloop.vision.synthetic import CLASS_NAMES


def _by_name(source: Source) -> dict[str, LabeledImage]:
    items = {}
    for item in source.items:
        assert isinstance(item, LabeledImage), item
        items[item.image.name] = item
    return items


def _assert_same_boxes(source: Source, truth: list[TruthImage], *, splits: bool) -> None:
    items = _by_name(source)
    assert sorted(items) == sorted(t.path.name for t in truth)
    for t in truth:
        item = items[t.path.name]
        w, h = t.size_wh
        got = sorted((b.class_name, b.xyxyn) for b in item.boxes)
        want = sorted((n, (x1 / w, y1 / h, x2 / w, y2 / h)) for n, (x1, y1, x2, y2) in t.boxes)
        assert [g[0] for g in got] == [w_[0] for w_ in want]
        for (_, a), (_, b) in zip(got, want, strict=True):
            assert a == pytest.approx(b, abs=2e-5)
        assert item.split == (t.split if splits else None)


@pytest.fixture(scope="module")
def yolo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[TruthImage]]:
    return synthetic_yolo(tmp_path_factory.mktemp("yolo") / "ds", n=10)


def test_yolo_data_yaml_and_its_folder_read_every_box(yolo: tuple[Path, list[TruthImage]]) -> None:
    data_yaml, truth = yolo
    assert sum(len(t.boxes) for t in truth) > 5  # the dataset has something to lose
    for path in (data_yaml, data_yaml.parent):
        source = read_yolo(path)
        _assert_same_boxes(source, truth, splits=True)
        assert source.class_names == tuple(CLASS_NAMES)


def test_yolo_tree_without_data_yaml_takes_names_from_classes_txt(
    yolo: tuple[Path, list[TruthImage]], tmp_path: Path
) -> None:
    import shutil

    data_yaml, truth = yolo
    root = tmp_path / "tree"
    shutil.copytree(data_yaml.parent, root)
    (root / "data.yaml").unlink()
    with pytest.raises(InvalidInputError, match=r"classes\.txt"):
        read_yolo(root)
    (root / "classes.txt").write_text("\n".join(CLASS_NAMES) + "\n")
    _assert_same_boxes(read_yolo(root), truth, splits=True)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        pytest.param("0 0.5 0.5 0.2", "expected 'class cx cy w h'", id="four-fields"),
        pytest.param("9 0.5 0.5 0.2 0.2", "class 9 is not in 0..3", id="unknown-class"),
        pytest.param("0 0.95 0.5 0.2 0.2", "outside 0..1", id="outside-image"),
        pytest.param("0 0.5 0.5 0 0.2", "outside 0..1 or empty", id="empty-box"),
        pytest.param("x 0.5 0.5 0.2 0.2", "not a YOLO label row", id="not-a-number"),
    ],
)
def test_yolo_bad_label_row_is_a_problem_of_that_image_only(
    tmp_path: Path, row: str, message: str
) -> None:
    data_yaml, truth = synthetic_yolo(tmp_path / "ds", n=5)
    bad = truth[0]
    (data_yaml.parent / "labels" / bad.split / f"{bad.path.stem}.txt").write_text(row + "\n")
    source = read_yolo(data_yaml)
    problems = [i for i in source.items if isinstance(i, FileProblem)]
    assert len(problems) == 1 and problems[0].path == bad.path
    assert message in problems[0].message
    assert len(source.items) == 5


def test_yolo_segmentation_rows_become_their_bounding_box(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    (tmp_path / "images" / "a.png").write_bytes(b"")
    (tmp_path / "labels" / "a.txt").write_text("1 0.1 0.2 0.5 0.3 0.3 0.6\n")
    (tmp_path / "classes.txt").write_text("a\nb\n")
    (item,) = read_yolo(tmp_path).items
    assert isinstance(item, LabeledImage)
    assert item.boxes[0].class_name == "b"
    assert item.boxes[0].xyxyn == pytest.approx((0.1, 0.2, 0.5, 0.6))
    assert item.split is None


def test_coco_json_reads_every_box_whatever_the_category_ids(
    yolo: tuple[Path, list[TruthImage]], tmp_path: Path
) -> None:
    json_path, truth = to_coco(yolo[1], tmp_path / "coco")
    for path in (json_path, json_path.parent):
        source = read_coco(path)
        _assert_same_boxes(source, truth, splits=False)
        assert set(source.class_names) == set(CLASS_NAMES)


def test_coco_problems_name_the_image_and_the_annotation(
    yolo: tuple[Path, list[TruthImage]], tmp_path: Path
) -> None:
    json_path, truth = to_coco(yolo[1], tmp_path / "coco")
    data = json.loads(json_path.read_text())
    with_boxes = [a["image_id"] for a in data["annotations"]]
    data["annotations"][0]["bbox"] = [600, 10, 100, 10]  # past the right edge of 640
    data["annotations"].append(
        {"id": 999, "image_id": with_boxes[-1], "category_id": 99, "bbox": [1, 1, 5, 5]}
    )
    data["images"].append({"id": 12345, "file_name": "missing.jpg", "width": 640, "height": 480})
    json_path.write_text(json.dumps(data))
    source = read_coco(json_path)
    problems = {p.path.name: p.message for p in source.items if isinstance(p, FileProblem)}
    assert len(problems) == 3, problems
    assert problems["missing.jpg"] == "image file not found"
    assert any("outside the 640x480 image" in m for m in problems.values())
    assert any("unknown category_id 99" in m for m in problems.values())
    assert len(source.items) == len(truth) + 1


@pytest.mark.parametrize("beside", [False, True], ids=["standard-layout", "xml-beside-images"])
def test_voc_reads_every_box(
    yolo: tuple[Path, list[TruthImage]], tmp_path: Path, beside: bool
) -> None:
    truth = to_voc(yolo[1], tmp_path / "voc", beside=beside)
    source = read_voc(tmp_path / "voc")
    _assert_same_boxes(source, truth, splits=not beside)


def test_voc_bad_files_are_problems_of_their_own(
    yolo: tuple[Path, list[TruthImage]], tmp_path: Path
) -> None:
    truth = to_voc(yolo[1], tmp_path / "voc")
    annotations = tmp_path / "voc" / "Annotations"
    (annotations / f"{truth[0].path.stem}.xml").write_text("<annotation><size>")
    box_xml = next(t for t in truth[1:] if t.boxes)
    text = (annotations / f"{box_xml.path.stem}.xml").read_text()
    (annotations / f"{box_xml.path.stem}.xml").write_text(
        text.replace("<xmax>", "<xmax>9", 1)  # 9xxx px: far past the image's right edge
    )
    (annotations / "orphan.xml").write_text(
        "<annotation><filename>gone.jpg</filename></annotation>"
    )
    source = read_voc(tmp_path / "voc")
    problems = {p.path.name: p.message for p in source.items if isinstance(p, FileProblem)}
    assert "not a readable XML file" in problems[f"{truth[0].path.stem}.xml"]
    assert "outside the 640x480 image" in problems[f"{box_xml.path.stem}.xml"]
    assert "is not in" in problems["orphan.xml"]
    assert len(problems) == 3


@pytest.mark.parametrize(
    ("reader", "layout"),
    [
        pytest.param(read_yolo, "empty", id="yolo-empty-folder"),
        pytest.param(read_coco, "empty", id="coco-no-json"),
        pytest.param(read_voc, "empty", id="voc-no-xml"),
        pytest.param(read_coco, "not-coco", id="coco-not-coco-json"),
    ],
)
def test_unknown_layouts_are_one_clear_error(tmp_path: Path, reader: object, layout: str) -> None:
    if layout == "not-coco":
        (tmp_path / "x.json").write_text('{"hello": 1}')
    with pytest.raises(InvalidInputError, match=str(tmp_path)):
        reader(tmp_path)  # type: ignore[operator]
