"""The oracle reviewer: takes labeling tasks through the HTTP API like a person with the reviewer
role, and answers each with the frame's ground truth.

With ``noise`` P each true box is, with probability P, either dropped or given another class
(one or the other, evenly), like a tired reviewer. The client must be signed in as a reviewer
(``sign_in``) against a running server; nothing here touches the database.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from visionloop.errors import InvalidInputError, VisionloopError
from visionloop.simulation.truth import Box

log = logging.getLogger(__name__)

API = "/api/v1"
CSRF_HEADERS = {"X-Visionloop-CSRF": "1"}

Truth = Callable[[Mapping[str, Any]], list[Box]]
"""The ground truth of a frame, given the frame as ``GET /api/v1/frames/{id}`` returns it."""


def sign_in(client: httpx.Client, *, username: str, password: str) -> None:
    """Sign ``client`` in (its cookie jar keeps the session) and make it send the CSRF header
    that cookie-authenticated writes need."""
    client.headers.update(CSRF_HEADERS)
    r = client.post(f"{API}/auth/login", json={"username": username, "password": password})
    if r.status_code != 200:
        raise VisionloopError(f"sign-in as {username!r} failed: {r.status_code} {r.text}")


@dataclass
class OracleReviewer:
    """Reviews tasks with the ground truth. ``review(limit)`` returns how many it submitted.

    ``client``: signed in as a reviewer, ``base_url`` set to the server. ``truth``: boxes of a
    frame (``LineTruth``). ``noise``: share 0..1 of true boxes dropped or mislabeled. ``rng``:
    the noise's randomness (seed it for a reproducible run).
    """

    client: httpx.Client
    truth: Truth
    noise: float = 0.0
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    submitted: int = 0
    boxes: int = 0
    dropped: int = 0
    mislabeled: int = 0
    skipped: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.noise <= 1.0:
            raise InvalidInputError(f"oracle noise must be within 0..1, got {self.noise}")

    def review(self, limit: int) -> int:
        """Lease and submit tasks until ``limit`` are submitted or the queue is empty; returns
        the number submitted by this call. A task whose frame's truth is unknown (no
        ``source_index``) is skipped with that reason."""
        done = 0
        while done < limit:
            r = self.client.post(f"{API}/labeling/next")
            if r.status_code == 204:
                break
            _ok(r, "lease a task")
            lease = r.json()
            task = lease["task"]
            classes = {c["name"]: int(c["id"]) for c in lease["classes"]}
            frame = self.client.get(f"{API}/frames/{task['frame_id']}")
            _ok(frame, f"read frame {task['frame_id']}")
            try:
                boxes = self.truth(frame.json())
            except InvalidInputError as exc:
                skip = self.client.post(
                    f"{API}/labeling/tasks/{task['id']}/skip", json={"reason": str(exc)[:500]}
                )
                _ok(skip, f"skip task {task['id']}")
                self.skipped += 1
                continue
            labels = self._labels(boxes, classes)
            sub = self.client.post(
                f"{API}/labeling/tasks/{task['id']}/submit", json={"labels": labels}
            )
            _ok(sub, f"submit task {task['id']}")
            done += 1
            self.submitted += 1
            self.boxes += len(labels)
        return done

    def _labels(self, boxes: list[Box], classes: Mapping[str, int]) -> list[dict[str, Any]]:
        """The submission's labels: each true box, or with ``noise`` dropped / another class."""
        ids = sorted(set(classes.values()))
        labels = []
        for box in boxes:
            class_id = classes.get(box.class_name)
            if class_id is None:
                continue  # a class the server does not know (yet): a person could not label it
            if self.noise and self.rng.random() < self.noise:
                if self.rng.random() < 0.5 or len(ids) < 2:
                    self.dropped += 1
                    continue
                class_id = self.rng.choice([i for i in ids if i != class_id])
                self.mislabeled += 1
            labels.append({"class_id": class_id, "xyxyn": list(box.xyxyn)})
        return labels


def _ok(response: httpx.Response, what: str) -> None:
    if response.status_code >= 400:
        raise VisionloopError(f"oracle could not {what}: {response.status_code} {response.text}")
