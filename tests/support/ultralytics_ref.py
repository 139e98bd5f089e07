"""Ultralytics as a reference, run in a subprocess: build a test model, predict, validate.

Run as ``python tests/support/ultralytics_ref.py COMMAND …`` (see ``main``). A subprocess keeps
Ultralytics' import-time side effects (thread counts, logging, settings) and its warnings out of
the test process. Everything is offline: ``prepare_ultralytics`` sets ``YOLO_OFFLINE`` and a
config folder of ours before the import.

``make-model`` builds a YOLO11n with 4 classes whose random weights are re-scaled so that, on
real images, it outputs a spread of confidences and box sizes (Ultralytics' own initialisation
makes every score identical and tiny, useless for a parity test). Deterministic in ``--seed``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

NAMES = {0: "scratch", 1: "dent", 2: "crack", 3: "stain"}


def _ultralytics(config_dir: Path) -> Any:
    from visionloop.training.ultralytics_env import prepare_ultralytics

    return prepare_ultralytics(config_dir, threads=2)


def make_model(out_dir: Path, *, imgsz: int, seed: int, config_dir: Path) -> None:
    """Write ``model.pt``, ``model.onnx`` (static input ``imgsz``) and ``model-nms.onnx`` (the
    same with NMS in the graph, ``nms=True``) into ``out_dir``."""
    import cv2
    import numpy as np

    _ultralytics(config_dir)
    import torch
    import ultralytics
    import yaml
    from ultralytics import YOLO

    out_dir.mkdir(parents=True, exist_ok=True)
    cfg_path = Path(ultralytics.__file__).parent / "cfg" / "models" / "11" / "yolo11.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["nc"] = len(NAMES)
    arch = out_dir / "yolo11n.yaml"  # the file name selects the "n" scale
    arch.write_text(yaml.safe_dump(cfg))

    torch.manual_seed(seed)
    model = YOLO(str(arch))
    head = model.model.model[-1]
    dfl = set(head.dfl.modules())
    for module in model.model.modules():
        if isinstance(module, torch.nn.Conv2d) and module not in dfl:
            fan_in = module.weight[0].numel()
            torch.nn.init.normal_(module.weight, 0.0, 1.0 / math.sqrt(fan_in))

    # Calibrate the two head branches on a drawn image: box logits with std 1.5, class logits
    # with std 2 around -3.5, so some anchors pass conf 0.25 and most do not.
    rng = np.random.default_rng(seed)
    image = np.full((480, 640, 3), 90, np.uint8)
    for _ in range(12):
        x, y = int(rng.integers(0, 600)), int(rng.integers(0, 440))
        w, h = int(rng.integers(10, 120)), int(rng.integers(10, 120))
        color = tuple(int(c) for c in rng.integers(0, 255, 3))
        cv2.rectangle(image, (x, y), (x + w, y + h), color, -1)
    outs: dict[tuple[str, int], Any] = {}
    hooks = []
    for kind, branch in (("box", head.cv2), ("cls", head.cv3)):
        for i, seq in enumerate(branch):
            hooks.append(
                seq[-1].register_forward_hook(
                    lambda _m, _i, out, key=(kind, i): outs.__setitem__(key, out.detach())
                )
            )
    model.model.eval()
    with torch.no_grad():
        tensor = torch.from_numpy(image[..., ::-1].copy()).permute(2, 0, 1)[None].float() / 255
        model.model(torch.nn.functional.interpolate(tensor, size=(imgsz, imgsz)))
    for hook in hooks:
        hook.remove()
    with torch.no_grad():
        for (kind, i), out in outs.items():
            conv = (head.cv2 if kind == "box" else head.cv3)[i][-1]
            std, mean = float(out.std()), float(out.mean())
            scale = (1.5 if kind == "box" else 2.0) / std
            conv.weight.mul_(scale)
            conv.bias.mul_(scale)
            conv.bias.add_((-3.5 if kind == "cls" else 0.0) - mean * scale)
    model.model.names = dict(NAMES)
    pt = out_dir / "model.pt"
    model.save(str(pt))
    # Both exports write <pt stem>.onnx: the one with NMS in the graph (output [1, 300, 6], an
    # end-to-end layout) first, then the plain one.
    exported = YOLO(str(pt)).export(format="onnx", imgsz=imgsz, simplify=False, nms=True)
    Path(exported).replace(out_dir / "model-nms.onnx")
    exported = YOLO(str(pt)).export(format="onnx", imgsz=imgsz, simplify=False, dynamic=False)
    Path(exported).replace(out_dir / "model.onnx")


def predict(
    weights: Path,
    images: list[Path],
    *,
    imgsz: int | list[int],
    conf: float,
    iou: float,
    config_dir: Path,
) -> list[dict[str, Any]]:
    """Ultralytics' own predictions (centred letterbox to ``imgsz``, ``n`` or ``[h, w]``, like
    our runtime) for each image."""
    _ultralytics(config_dir)
    from ultralytics import YOLO

    model = YOLO(str(weights))
    answers = []
    for image in images:
        result = model.predict(
            str(image), imgsz=imgsz, conf=conf, iou=iou, rect=False, verbose=False, device="cpu"
        )[0]
        answers.append(
            {
                "xyxy": result.boxes.xyxy.numpy().tolist(),
                "confidence": result.boxes.conf.numpy().tolist(),
                "class_id": result.boxes.cls.numpy().astype(int).tolist(),
            }
        )
    return answers


def val(
    weights: Path, data_yaml: Path, *, split: str, imgsz: int, config_dir: Path
) -> dict[str, Any]:
    """Ultralytics' ``val`` mAP50 and mAP50-95 on one split."""
    _ultralytics(config_dir)
    from ultralytics import YOLO

    model = YOLO(str(weights), task="detect")
    metrics = model.val(
        data=str(data_yaml),
        split=split,
        imgsz=imgsz,
        batch=1,
        device="cpu",
        plots=False,
        verbose=False,
        rect=False,
        project=str(config_dir / "runs"),
        name="val",
        exist_ok=True,
    )
    return {"map50": float(metrics.box.map50), "map50_95": float(metrics.box.map)}


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=("make-model", "predict", "val"))
    parser.add_argument("--config-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--images", type=Path, nargs="*", default=[])
    parser.add_argument("--data", type=Path)
    parser.add_argument("--split", default="test")
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--predict-imgsz", default=None, help="predict: N or HxW")
    parser.add_argument("--conf", type=float, default=0.25)
    parser.add_argument("--iou", type=float, default=0.7)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.command == "make-model":
        make_model(args.out, imgsz=args.imgsz, seed=args.seed, config_dir=args.config_dir)
        return
    if args.command == "predict":
        sides = [int(v) for v in str(args.predict_imgsz or args.imgsz).split("x")]
        answer: Any = predict(
            args.weights,
            args.images,
            imgsz=sides[0] if len(sides) == 1 else sides,
            conf=args.conf,
            iou=args.iou,
            config_dir=args.config_dir,
        )
    else:
        answer = val(
            args.weights, args.data, split=args.split, imgsz=args.imgsz, config_dir=args.config_dir
        )
    args.out.write_text(json.dumps(answer))


if __name__ == "__main__":
    main(sys.argv[1:])
