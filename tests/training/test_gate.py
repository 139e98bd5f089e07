"""The promotion gate: its rules, verdicts and decisions on constructed evaluations and
per-image matches (pure: evaluations in, report out), and the bootstrap interval on a case
computed by hand."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from visionloop.training.bootstrap import paired_bootstrap
from visionloop.training.gate import gate_report
from visionloop.training.matches import MatchTable


def _table(found: list[bool], *, extra_fp: int = 0, digest: str = "") -> MatchTable:
    """One class, one true box per image; ``found[i]``: the model found image i's box (score
    0.9), and ``extra_fp`` false positives (score 0.95) on each image."""
    n = len(found)
    image, score, tp = [], [], []
    for i, hit in enumerate(found):
        if hit:
            image.append(i)
            score.append(0.9)
            tp.append(True)
        for _ in range(extra_fp):
            image.append(i)
            score.append(0.95)
            tp.append(False)
    return MatchTable(
        truth=np.ones((n, 1), np.int64),
        image=np.asarray(image, np.int64),
        class_id=np.zeros(len(image), np.int64),
        score=np.asarray(score, np.float64),
        tp=np.asarray(tp, bool),
        digest=digest or f"{found}{extra_fp}",
    )


def _eval(
    map50: float, images: int = 100, sha: str = "c", preds: str = "", **recalls: float
) -> dict[str, Any]:
    return {
        "map50": map50,
        "map50_95": map50 / 2,
        "images": images,
        "model_sha256": sha,
        "predictions_sha256": preds or f"{sha}{map50}{images}",
        "per_class": {
            n: {"ap50": map50, "recall": r, "instances": images}
            for n, r in (recalls or {"scratch": 0.9}).items()
        },
    }


def _pair(c_hits: int, p_hits: int, n: int) -> tuple[MatchTable, MatchTable]:
    return _table([i < c_hits for i in range(n)]), _table([i < p_hits for i in range(n)])


def _gate(candidate: dict[str, Any], production: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return gate_report(
        candidate=candidate,
        production=production,
        max_golden_drop=kw.pop("max_golden_drop", 0.01),
        recall_floors=kw.pop("recall_floors", {}),
        **kw,
    )


def _rule(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(r for r in report["rules"] if r["rule"] == name)


# --- the interval ---------------------------------------------------------------------------


def test_interval_on_a_case_computed_by_hand() -> None:
    """One box per image, no false positives: the candidate finds all (AP 1 in any resample),
    production half (AP = (100 r + 1) / 101 at recall r, COCO's 101 points). In a resample
    production's recall is Binomial(100, 0.5) / 100, whose 2.5% and 97.5% quantiles are 40 and
    60: the difference's interval is 1 - 61/101 .. 1 - 41/101 = 0.396 .. 0.594."""
    cand, prod = _pair(100, 50, 100)
    iv = paired_bootstrap(cand, prod, resamples=4000, seed=1)
    assert iv.difference == pytest.approx(1 - 51 / 101)
    assert iv.low == pytest.approx(1 - 61 / 101, abs=0.015)
    assert iv.high == pytest.approx(1 - 41 / 101, abs=0.015)
    assert iv.resamples == 4000
    again = paired_bootstrap(cand, prod, resamples=4000, seed=1)
    assert (again.low, again.high) == (iv.low, iv.high)  # seeded


def test_identical_predictions_give_a_zero_interval() -> None:
    cand, prod = _pair(30, 30, 60)
    iv = paired_bootstrap(cand, prod)
    assert (iv.low, iv.difference, iv.high) == (0.0, 0.0, 0.0)
    assert iv.resamples == 2000


def test_interval_needs_the_same_images() -> None:
    with pytest.raises(ValueError, match="same images"):
        paired_bootstrap(_table([True] * 5), _table([True] * 6))


def test_false_positives_above_the_hits_lower_the_difference() -> None:
    cand = _table([True] * 40, extra_fp=1)  # a false positive outranks every hit: AP ~0.5
    prod = _table([True] * 40)
    iv = paired_bootstrap(cand, prod)
    assert iv.high < 0  # surely worse


# --- the rules and the decision -------------------------------------------------------------

GOLDEN_OK = {"golden": _eval(0.99)}
GOLDEN_PROD = {"golden": _eval(0.99, sha="p")}


@pytest.mark.parametrize(
    ("c_hits", "p_hits", "n", "verdict", "decision"),
    [
        (40, 20, 40, "better", "promote"),
        (21, 20, 40, "no worse", "stage"),
        (20, 20, 40, "no worse", "stage"),
        (5, 30, 40, "worse", "reject"),
    ],
    ids=["better", "slightly-better-no-evidence", "equal", "worse"],
)
def test_recent_verdicts(c_hits: int, p_hits: int, n: int, verdict: str, decision: str) -> None:
    cand, prod = _pair(c_hits, p_hits, n)
    report = _gate(
        {**GOLDEN_OK, "recent": _eval(c_hits / n, images=n, preds=f"c{c_hits}")},
        {**GOLDEN_PROD, "recent": _eval(p_hits / n, images=n, sha="p", preds=f"p{p_hits}")},
        matches={"recent": (cand, prod)},
    )
    recent = _rule(report, "recent_map50")
    assert recent["verdict"] == verdict
    assert recent["evidence"] == {"set": "recent", "images": n, "boxes": {"scratch": n}}
    assert recent["interval"]["resamples"] == 2000
    assert "95% interval" in recent["detail"]
    assert report["decision"] == decision
    assert report["promote"] is (decision == "promote")
    assert report["passed"] is (decision != "reject")
    if decision == "stage":
        assert "automatic promotion needs better" in report["reason"]
        assert report["summary"].startswith("passed, staging only")


def test_no_worse_promotes_when_the_setting_allows() -> None:
    cand, prod = _pair(20, 20, 40)
    report = _gate(
        {**GOLDEN_OK, "recent": _eval(0.5, images=40, preds="c")},
        {**GOLDEN_PROD, "recent": _eval(0.5, images=40, sha="p", preds="p")},
        matches={"recent": (cand, prod)},
        promote_on="no worse",
    )
    assert report["decision"] == "promote"


def test_nine_labels_are_too_little_evidence() -> None:
    """The demo's round on 9 labels: one held-out recent image; both models score the same."""
    cand, prod = _pair(1, 0, 1)
    report = _gate(
        {**GOLDEN_OK, "recent": _eval(1.0, images=1, preds="c")},
        {**GOLDEN_PROD, "recent": _eval(0.0, images=1, sha="p", preds="p")},
        matches={"recent": (cand, prod)},
    )
    recent = _rule(report, "recent_map50")
    assert recent["verdict"] == "not judged"
    assert "1 recent images, fewer than the 30 needed" in recent["detail"]
    assert report["passed"] is True  # nothing failed: staged for a person to decide
    assert report["promote"] is False
    assert report["decision"] == "stage"
    assert report["reason"].startswith("too little evidence")


def test_no_recent_slice_is_not_judged_and_not_promoted() -> None:
    report = _gate({**GOLDEN_OK, "recent": None}, {**GOLDEN_PROD, "recent": None})
    assert _rule(report, "recent_map50")["verdict"] == "not judged"
    assert report["decision"] == "stage"
    # the fast configuration: no minimum, no worse suffices
    fast = _gate(
        {**GOLDEN_OK, "recent": None},
        {**GOLDEN_PROD, "recent": None},
        min_images=0,
        promote_on="no worse",
    )
    assert fast["decision"] == "promote"


@pytest.mark.parametrize("same", ["sha256", "predictions"])
def test_a_candidate_identical_to_production_is_never_promoted(same: str) -> None:
    cand, prod = _pair(40, 20, 40)  # even when the numbers say better
    c = {"golden": _eval(0.99, preds="g"), "recent": _eval(1.0, images=40, preds="r")}
    p = {
        "golden": _eval(0.99, sha="p", preds="g"),
        "recent": _eval(0.5, images=40, sha="p", preds="r"),
    }
    if same == "sha256":
        for e in p.values():
            e["model_sha256"] = "c"
            e["predictions_sha256"] = "other"
    report = _gate(c, p, matches={"recent": (cand, prod)}, min_images=0, promote_on="no worse")
    assert report["identical"] is not None
    assert report["promote"] is False
    assert report["decision"] == "stage"
    assert report["reason"].startswith("identical to production")


@pytest.mark.parametrize(
    ("candidate", "production", "floors", "failed_rules"),
    [
        ({"golden": _eval(0.97)}, {"golden": _eval(0.99, sha="p")}, {}, {"golden_drop"}),
        ({"golden": _eval(0.98)}, {"golden": _eval(0.99, sha="p")}, {}, set()),
        ({"golden": None}, {"golden": None}, {}, {"golden_drop"}),
        (
            {"golden": _eval(0.99, crack=0.8)},
            {"golden": _eval(0.99, sha="p")},
            {"crack": 0.9},
            {"recall_floor:crack"},
        ),
    ],
    ids=[
        "golden-drop-over",
        "golden-drop-exactly-the-limit",
        "no-golden-set-fails",
        "recall-floor",
    ],
)
def test_golden_and_recall_rules(
    candidate: dict[str, Any],
    production: dict[str, Any],
    floors: dict[str, float],
    failed_rules: set[str],
) -> None:
    report = _gate(
        {**candidate, "recent": None}, {**production, "recent": None}, recall_floors=floors
    )
    assert {r["rule"] for r in report["rules"] if not r["passed"]} == failed_rules
    assert report["decision"] == ("reject" if failed_rules else "stage")
    assert report["summary"].startswith("failed" if failed_rules else "passed")
    assert report["settings"]["recall_floors"] == floors
    golden = _rule(report, "golden_drop")
    if candidate["golden"] is not None:
        assert golden["evidence"]["images"] == 100
        assert "100 images; boxes: " in golden["detail"]


def test_a_small_golden_set_fails_a_loss_and_does_not_judge_the_rest() -> None:
    lost = _gate(
        {"golden": _eval(0.5, images=4), "recent": None},
        {"golden": _eval(0.99, images=4, sha="p"), "recent": None},
    )
    assert _rule(lost, "golden_drop")["verdict"] == "over budget"
    assert lost["decision"] == "reject"


def test_a_small_golden_set_is_not_judged() -> None:
    report = _gate(
        {"golden": _eval(0.99, images=12), "recent": None},
        {"golden": _eval(0.99, images=12, sha="p"), "recent": None},
    )
    golden = _rule(report, "golden_drop")
    assert golden["verdict"] == "not judged"
    assert golden["passed"] is True
    assert report["decision"] == "stage"


@pytest.mark.parametrize(
    ("max_recent_drop", "verdict"), [(0.0, "worse"), (0.5, "no worse")], ids=str
)
def test_recent_rule_allows_a_set_drop(max_recent_drop: float, verdict: str) -> None:
    cand, prod = _pair(30, 40, 40)
    report = _gate(
        {**GOLDEN_OK, "recent": _eval(0.75, images=40, preds="c")},
        {**GOLDEN_PROD, "recent": _eval(1.0, images=40, sha="p", preds="p")},
        matches={"recent": (cand, prod)},
        max_recent_drop=max_recent_drop,
    )
    assert _rule(report, "recent_map50")["verdict"] == verdict
    assert report["passed"] is (verdict != "worse")
