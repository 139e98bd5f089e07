"""The promotion gate: does a candidate model replace the production model? Pure: it reads the
evaluations of both models on the same two sets (and their per-image matches) and returns the
report stored as ``gate.json``.

The sets: ``golden`` (a fixed labeled dataset, ``VISIONLOOP_GOLDEN_SET``) and ``recent`` (the
held-out ``test`` slice of the reviewed labels the candidate was trained beside). Every rule
states its evidence (images, true boxes per class) and judges only with at least
``min_images`` images (``VISIONLOOP_GATE_MIN_RECENT_IMAGES``); below that it is *not judged*,
which never fails a candidate but never promotes one automatically either.

- ``recent_map50``: a paired bootstrap over the recent images (``training.bootstrap``) gives the
  95% interval of candidate minus production mAP50. Verdict ``better`` (the interval is above 0),
  ``worse`` (the interval is below ``-max_recent_drop``: the candidate surely loses more than
  allowed; fails the gate), else ``no worse``. Not judged when the slice is empty, smaller than
  the minimum, or production cannot be evaluated on it (the class list grew).
- ``golden_drop``: on the golden set the candidate loses at most ``max_golden_drop`` mAP50
  against production (the point figures; the interval is shown beside them). Failed when there
  is no golden set (nothing proves the candidate kept what production knew) and on a loss over
  the budget whatever the set's size; a loss within it on fewer images than the minimum is not
  judged.
- ``recall_floor:<class>``: on each set, the class's recall (at the operating threshold) is at
  least its floor (``VISIONLOOP_GATE_RECALL_FLOORS``); its evidence is the class's true boxes.

The decision: ``reject`` when a rule failed (registered, never promoted); ``promote`` when
nothing failed, recent is ``better`` (or ``no worse`` with ``promote_on="no worse"``, the demo's
fast configuration), every rule was judged and the candidate is not identical to production
(same ONNX sha256, or the same predictions on every set); else ``stage`` (the ``staging`` alias,
with the reason: a person decides). ``passed`` is "no rule failed".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from visionloop.training.bootstrap import RESAMPLES, SEED, paired_bootstrap
from visionloop.training.matches import MatchTable

Evaluation = Mapping[str, Any]
"""``EvalReport.to_dict()``: ``map50``, ``map50_95``, ``per_class[name]["recall"|"instances"]``,
``images``, ``model_sha256``, ``predictions_sha256``."""

PromoteOn = Literal["better", "no worse"]
SETS = ("golden", "recent")
MIN_IMAGES = 30
"""Default least images a rule judges on (README, Promotion gate: how it was chosen)."""


def _brief(evaluation: Evaluation | None) -> dict[str, Any] | None:
    if evaluation is None:
        return None
    return {
        "map50": float(evaluation["map50"]),
        "map50_95": float(evaluation["map50_95"]),
        "images": int(evaluation.get("images", 0)),
        "per_class": {
            name: {
                "ap50": float(m["ap50"]),
                "recall": float(m["recall"]),
                "instances": int(m.get("instances", 0)),
            }
            for name, m in dict(evaluation.get("per_class", {})).items()
        },
    }


def evidence_of(evaluation: Evaluation | None, set_name: str) -> dict[str, Any]:
    """What a rule on ``set_name`` stands on: its images and true boxes per class."""
    per_class = dict(evaluation.get("per_class", {})) if evaluation is not None else {}
    boxes = {name: int(m.get("instances", 0)) for name, m in sorted(per_class.items())}
    return {
        "set": set_name,
        "images": int(evaluation.get("images", 0)) if evaluation is not None else 0,
        "boxes": boxes,
    }


def _evidence_text(evidence: Mapping[str, Any]) -> str:
    boxes = evidence["boxes"]
    per_class = ", ".join(f"{n} {c}" for n, c in boxes.items()) or "no boxes"
    return f"{evidence['images']} images; boxes: {per_class}"


def _signed(x: float) -> str:
    return f"{x:+.4f}"


def _interval_text(interval: Mapping[str, Any]) -> str:
    return (
        f"{_signed(interval['difference'])} "
        f"({round(100 * interval['confidence'])}% interval {_signed(interval['low'])} to "
        f"{_signed(interval['high'])}, {interval['resamples']:,} resamples)"
    )


def _interval(
    matches: Mapping[str, tuple[MatchTable, MatchTable]], set_name: str, resamples: int, seed: int
) -> dict[str, Any] | None:
    pair = matches.get(set_name)
    if pair is None:
        return None
    try:
        return paired_bootstrap(pair[0], pair[1], resamples=resamples, seed=seed).to_dict()
    except ValueError:  # different images (cannot happen from train.py) or no true box
        return None


def identical(
    candidate: Mapping[str, Evaluation | None], production: Mapping[str, Evaluation | None]
) -> str | None:
    """Why the candidate is production again (same ONNX file, or the same predictions on every
    set both were evaluated on), or None."""
    pairs = [
        (c, p)
        for s in SETS
        if (c := candidate.get(s)) is not None and (p := production.get(s)) is not None
    ]
    for c, p in pairs:
        if c.get("model_sha256") and c.get("model_sha256") == p.get("model_sha256"):
            return "the candidate's ONNX file is production's (same sha256)"
    digests = [(c.get("predictions_sha256"), p.get("predictions_sha256")) for c, p in pairs]
    if digests and all(a and a == b for a, b in digests):
        return "the candidate's predictions are production's on every image of every set"
    return None


def _recent_rule(
    cand: Evaluation | None,
    prod: Evaluation | None,
    *,
    note: str | None,
    interval: dict[str, Any] | None,
    min_images: int,
    max_drop: float,
) -> dict[str, Any]:
    evidence = evidence_of(cand, "recent")
    rule: dict[str, Any] = {"rule": "recent_map50", "evidence": evidence, "interval": interval}

    def not_judged(why: str) -> dict[str, Any]:
        # min_images 0: evidence is not required (a missing slice is skipped, not a reason).
        return rule | {
            "verdict": "not judged",
            "passed": True,
            "skipped": True,
            "judged": min_images == 0,
            "detail": f"not judged: {why}",
        }

    if cand is None or prod is None:
        return not_judged(note or "no held-out recent labels")
    if evidence["images"] < min_images:
        return not_judged(
            f"{evidence['images']} recent images, fewer than the {min_images} needed "
            f"(VISIONLOOP_GATE_MIN_RECENT_IMAGES; {_evidence_text(evidence)})"
        )
    c, p = float(cand["map50"]), float(prod["map50"])
    rule |= {"candidate": c, "production": p, "max_drop": max_drop}
    if interval is None:
        return not_judged(
            f"recent mAP50 {c:.4f} vs {p:.4f}, but no interval (no per-image results or no true "
            "box)"
        )
    if interval["low"] > 0:
        verdict = "better"
    elif interval["high"] < -max_drop - 1e-12:
        verdict = "worse"
    else:
        verdict = "no worse"
    allowed = f", {max_drop:g} drop allowed" if max_drop else ""
    return rule | {
        "verdict": verdict,
        "passed": verdict != "worse",
        "skipped": False,
        "judged": True,
        "detail": f"recent: {verdict}: mAP50 {c:.4f} (candidate) vs {p:.4f} (production), "
        f"difference {_interval_text(interval)}{allowed}; {_evidence_text(evidence)}",
    }


def _golden_rule(
    cand: Evaluation | None,
    prod: Evaluation | None,
    *,
    note: str | None,
    interval: dict[str, Any] | None,
    min_images: int,
    max_drop: float,
) -> dict[str, Any]:
    evidence = evidence_of(cand, "golden")
    rule: dict[str, Any] = {"rule": "golden_drop", "evidence": evidence, "interval": interval}
    if cand is None or prod is None:
        return rule | {
            "verdict": "failed",
            "passed": False,
            "skipped": False,
            "judged": True,
            "detail": "failed: " + (note or "no golden set evaluation"),
        }
    c, p = float(cand["map50"]), float(prod["map50"])
    drop = p - c
    ok = drop <= max_drop + 1e-12
    if ok and evidence["images"] < min_images:
        # A loss over the budget fails on any golden set (it guards what production knew); a
        # small one proves nothing either way.
        return rule | {
            "verdict": "not judged",
            "passed": True,
            "skipped": True,
            "judged": False,
            "candidate": c,
            "production": p,
            "drop": drop,
            "max_drop": max_drop,
            "detail": f"not judged: golden drop {drop:.4f} within {max_drop:g}, but on "
            f"{evidence['images']} golden images, fewer than the {min_images} needed "
            "(VISIONLOOP_GATE_MIN_RECENT_IMAGES)",
        }
    spread = f"; difference {_interval_text(interval)}" if interval is not None else ""
    return rule | {
        "verdict": "within budget" if ok else "over budget",
        "passed": ok,
        "skipped": False,
        "judged": True,
        "candidate": c,
        "production": p,
        "drop": drop,
        "max_drop": max_drop,
        "detail": f"golden mAP50 {c:.4f} (candidate) vs {p:.4f} (production): drop "
        f"{drop:.4f} {'within' if ok else 'over'} {max_drop:g}{spread}; "
        f"{_evidence_text(evidence)}",
    }


def gate_report(
    *,
    candidate: Mapping[str, Evaluation | None],
    production: Mapping[str, Evaluation | None],
    max_golden_drop: float,
    recall_floors: Mapping[str, float],
    notes: Mapping[str, str] | None = None,
    max_recent_drop: float = 0.0,
    matches: Mapping[str, tuple[MatchTable, MatchTable]] | None = None,
    min_images: int = MIN_IMAGES,
    promote_on: PromoteOn = "better",
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> dict[str, Any]:
    """The gate's verdict on ``candidate`` against ``production``.

    ``candidate`` and ``production`` map each set name (``golden``, ``recent``) to that model's
    evaluation on it, or None where it was not evaluated (``notes[set]`` says why); ``matches``
    maps a set to (candidate's, production's) per-image matches on it, for the intervals.
    Returns ``{"passed", "promote", "decision", "reason", "identical", "summary", "rules":
    [{"rule", "verdict", "passed", "skipped", "judged", "evidence", "interval", "detail", …}],
    "sets", "settings"}``: JSON-ready.
    """
    notes = dict(notes or {})
    matches = dict(matches or {})
    intervals = {s: _interval(matches, s, resamples, seed) for s in SETS}
    rules = [
        _recent_rule(
            candidate.get("recent"),
            production.get("recent"),
            note=notes.get("recent"),
            interval=intervals["recent"],
            min_images=min_images,
            max_drop=max_recent_drop,
        ),
        _golden_rule(
            candidate.get("golden"),
            production.get("golden"),
            note=notes.get("golden"),
            interval=intervals["golden"],
            min_images=min_images,
            max_drop=max_golden_drop,
        ),
    ]
    for name, floor in sorted(recall_floors.items()):
        for set_name in SETS:
            evaluation = candidate.get(set_name)
            per_class = dict(evaluation.get("per_class", {})) if evaluation is not None else {}
            if name not in per_class:
                continue
            recall = float(per_class[name]["recall"])
            ok = recall >= floor
            boxes = int(per_class[name].get("instances", 0))
            rules.append(
                {
                    "rule": f"recall_floor:{name}",
                    "set": set_name,
                    "verdict": "above floor" if ok else "below floor",
                    "passed": ok,
                    "skipped": False,
                    "judged": True,
                    "evidence": {
                        "set": set_name,
                        "images": evidence_of(evaluation, set_name)["images"],
                        "boxes": {name: boxes},
                    },
                    "interval": None,
                    "recall": recall,
                    "floor": floor,
                    "detail": f"{name} recall on {set_name} {recall:.4f} "
                    f"{'>=' if ok else '<'} floor {floor:g} ({boxes} boxes)",
                }
            )

    failed = [r for r in rules if not r["passed"]]
    same = identical(candidate, production)
    recent_verdict = rules[0]["verdict"]
    unjudged = [r for r in rules if not r["judged"]]
    wanted = ("better",) if promote_on == "better" else ("better", "no worse")
    if failed:
        decision, reason = "reject", "failed: " + "; ".join(r["detail"] for r in failed)
    elif same is not None:
        decision, reason = "stage", f"identical to production: {same}"
    elif unjudged:
        decision = "stage"
        reason = "too little evidence: " + "; ".join(r["detail"] for r in unjudged)
    elif recent_verdict not in wanted and not (
        recent_verdict == "not judged" and promote_on == "no worse"
    ):
        decision = "stage"
        reason = f"recent is {recent_verdict}, automatic promotion needs {promote_on}"
    else:
        decision, reason = "promote", ""
    judged = "; ".join(r["detail"] for r in rules if not r["skipped"])
    if decision == "reject":
        summary = reason
    elif decision == "stage":
        summary = f"passed, staging only ({reason})" + (f": {judged}" if judged else "")
    else:
        summary = "passed: " + judged
    return {
        "passed": not failed,
        "promote": decision == "promote",
        "decision": decision,
        "reason": reason,
        "identical": same,
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
            "min_images": min_images,
            "promote_on": promote_on,
            "resamples": resamples,
            "seed": seed,
        },
    }
