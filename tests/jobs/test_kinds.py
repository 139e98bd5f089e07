"""The registry of job kinds: parameters checked per kind, names unique, lookups that explain."""

from __future__ import annotations

import pytest

from support.jobs import SLEEP, test_kinds
from visionloop.errors import InvalidInputError
from visionloop.jobs.evaluate import EVALUATE
from visionloop.jobs.kinds import JobKinds, default_kinds, ref
from visionloop.jobs.quantize import QUANTIZE


def test_validate_fills_defaults_and_names_bad_fields() -> None:
    assert EVALUATE.validate({"model_version": "3", "dataset": "/d"}) == {
        "model_version": "3",
        "dataset": "/d",
        "split": "test",
        "backend": "auto",
        "precision": "fp32",
    }
    with pytest.raises(InvalidInputError) as err:
        EVALUATE.validate({"model_version": "3", "dataset": "/d", "backend": "cuda", "x": 1})
    assert str(err.value).startswith(
        "invalid params for job kind 'evaluate': params.backend: Input"
    )
    assert "params.x: Extra inputs are not permitted" in str(err.value)


def test_quantize_params() -> None:
    assert QUANTIZE.validate({"model_version": "1"}) == {
        "model_version": "1",
        "calibration": 300,
        "eval_images": 300,
        "drift": "lighting:1.0",
    }
    for bad in ({"model_version": "production"}, {"model_version": "1", "calibration": 0}):
        with pytest.raises(InvalidInputError, match="invalid params for job kind 'quantize'"):
            QUANTIZE.validate(bad)


def test_kinds_are_unique_and_lookups_name_the_known_ones() -> None:
    kinds = test_kinds()
    shipped = ["evaluate", "train", "quantize", "drift_check", "alert_webhook"]
    assert list(kinds) == [*shipped, "sleep"]
    assert list(default_kinds()) == shipped
    with pytest.raises(ValueError, match="registered twice"):
        kinds.add(SLEEP)
    with pytest.raises(InvalidInputError, match=r"unknown job kind 'drift' \(known: evaluate"):
        kinds.kind("drift")
    with pytest.raises(InvalidInputError, match="unknown job kind drift"):
        kinds.only(["sleep", "drift"])
    assert list(kinds.only(["sleep"])) == ["sleep"]
    assert list(JobKinds()) == []


def test_ref_names_an_importable_object() -> None:
    assert ref(SLEEP.run) == "support.jobs:run_sleep"
    assert ref(EVALUATE.params) == "visionloop.jobs.evaluate:EvaluateParams"
