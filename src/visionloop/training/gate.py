"""The promotion gate: does a candidate model replace the production model? Pure: it reads the
evaluations of both models on the same two sets and returns the report stored as ``gate.json``.

The sets: ``golden`` (a fixed labeled dataset, ``VISIONLOOP_GOLDEN_SET``) and ``recent`` (the
held-out ``test`` slice of the reviewed labels the candidate was trained beside). The rules, each
with its numbers and verdict in the report:

- ``recent_map50``: on the recent slice the candidate's mAP50 is at least production's, less
  ``max_recent_drop`` (0 by default; skipped,
  not failed, when the slice is empty or production cannot be evaluated on it because the class
  list grew);
- ``golden_drop``: on the golden set the candidate loses at most ``max_golden_drop`` mAP50
  against production (failed when there is no golden set: nothing proves the candidate kept
  what production knew);
- ``recall_floor:<class>``: on each set, the class's recall (at the operating threshold) is at
  least its floor (``VISIONLOOP_GATE_RECALL_FLOORS``); a class absent from a set is not judged
  there.

The candidate passes when no rule failed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Evaluation = Mapping[str, Any]
"""``EvalReport.to_dict()``: ``map50``, ``map50_95``, ``per_class[name]["recall"]``, ``images``."""

SETS = ("golden", "recent")


def _brief(evaluation: Evaluation | None) -> dict[str, Any] | None:
    if evaluation is None:
        return None
    return {
        "map50": float(evaluation["map50"]),
        "map50_95": float(evaluation["map50_95"]),
        "images": int(evaluation.get("images", 0)),
        "per_class": {
            name: {"ap50": float(m["ap50"]), "recall": float(m["recall"])}
            for name, m in dict(evaluation.get("per_class", {})).items()
        },
    }


def gate_report(
    *,
    candidate: Mapping[str, Evaluation | None],
    production: Mapping[str, Evaluation | None],
    max_golden_drop: float,
    recall_floors: Mapping[str, float],
    notes: Mapping[str, str] | None = None,
    max_recent_drop: float = 0.0,
) -> dict[str, Any]:
    """The gate's verdict on ``candidate`` against ``production``.

    ``candidate`` and ``production`` map each set name (``golden``, ``recent``) to that model's
    evaluation on it, or None where it was not evaluated (``notes[set]`` says why). Returns
    ``{"passed", "summary", "rules": [{"rule", "passed", "skipped", "detail", ...}], "sets",
    "settings"}``: JSON-ready.
    """
    notes = dict(notes or {})
    rules: list[dict[str, Any]] = []

    cand_recent, prod_recent = candidate.get("recent"), production.get("recent")
    if cand_recent is None or prod_recent is None:
        rules.append(
            {
                "rule": "recent_map50",
                "passed": True,
                "skipped": True,
                "detail": "not judged: " + notes.get("recent", "no held-out recent labels"),
            }
        )
    else:
        c, p = float(cand_recent["map50"]), float(prod_recent["map50"])
        ok = c >= p - max_recent_drop - (1e-12 if max_recent_drop else 0.0)
        if max_recent_drop:
            verdict = f"drop {p - c:.4f} {'within' if ok else 'over'} {max_recent_drop:g}"
        else:
            verdict = "at least production's" if ok else "below production's"
        rules.append(
            {
                "rule": "recent_map50",
                "passed": ok,
                "skipped": False,
                "candidate": c,
                "production": p,
                "max_drop": max_recent_drop,
                "detail": f"recent mAP50 {c:.4f} (candidate) vs {p:.4f} (production): {verdict}",
            }
        )

    cand_golden, prod_golden = candidate.get("golden"), production.get("golden")
    if cand_golden is None or prod_golden is None:
        rules.append(
            {
                "rule": "golden_drop",
                "passed": False,
                "skipped": False,
                "detail": "failed: " + notes.get("golden", "no golden set evaluation"),
            }
        )
    else:
        c, p = float(cand_golden["map50"]), float(prod_golden["map50"])
        drop = p - c
        ok = drop <= max_golden_drop + 1e-12
        rules.append(
            {
                "rule": "golden_drop",
                "passed": ok,
                "skipped": False,
                "candidate": c,
                "production": p,
                "drop": drop,
                "max_drop": max_golden_drop,
                "detail": f"golden mAP50 {c:.4f} (candidate) vs {p:.4f} (production): drop "
                f"{drop:.4f} {'within' if ok else 'over'} {max_golden_drop:g}",
            }
        )

    for name, floor in sorted(recall_floors.items()):
        for set_name in SETS:
            evaluation = candidate.get(set_name)
            per_class = dict(evaluation.get("per_class", {})) if evaluation is not None else {}
            if name not in per_class:
                continue
            recall = float(per_class[name]["recall"])
            ok = recall >= floor
            rules.append(
                {
                    "rule": f"recall_floor:{name}",
                    "set": set_name,
                    "passed": ok,
                    "skipped": False,
                    "recall": recall,
                    "floor": floor,
                    "detail": f"{name} recall on {set_name} {recall:.4f} "
                    f"{'>=' if ok else '<'} floor {floor:g}",
                }
            )

    failed = [r for r in rules if not r["passed"]]
    passed = not failed
    summary = (
        "passed: " + "; ".join(r["detail"] for r in rules if not r["skipped"])
        if passed
        else "failed: " + "; ".join(r["detail"] for r in failed)
    )
    return {
        "passed": passed,
        "summary": summary,
        "rules": rules,
        "sets": {
            s: {
                "candidate": _brief(candidate.get(s)),
                "production": _brief(production.get(s)),
                **({"note": notes[s]} if s in notes else {}),
            }
            for s in SETS
        },
        "settings": {
            "max_golden_drop": max_golden_drop,
            "max_recent_drop": max_recent_drop,
            "recall_floors": dict(recall_floors),
        },
    }
