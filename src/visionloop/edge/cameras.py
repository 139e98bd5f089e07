"""Several cameras in one process: one agent per camera over one loaded model.

``visionloop edge --source A --source B …`` builds one :class:`~visionloop.edge.agent.AgentConfig`
per camera, each with its own device token, outbox, sampler and uploader (so each camera's
frames, heartbeats and model version arrive under its own device), and runs them here. The
model is loaded once, by the first camera's identity, and shared: its backend is thread-safe
and runs as many inferences side by side as it has streams (OpenVINO), so the cameras' frames
interleave on one compiled model instead of each camera loading, compiling and holding its
own. One model watcher (the first camera's token) keeps the shared model on the server's
production version and hands every update to all the cameras' pipelines.

Frames are not batched across cameras: on the machines measured (docs/performance.md) batch 4
ran slower than two streams of batch 1, and a batch would make each camera wait for the others.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

import httpx

from visionloop.edge.agent import Agent, AgentConfig, AgentSummary, SharedModel
from visionloop.edge.model_watch import ModelWatcher
from visionloop.errors import InvalidInputError

log = logging.getLogger(__name__)


def check_cameras(configs: Sequence[AgentConfig]) -> None:
    """Refuse a set of cameras that would mix up devices: each needs its own token and outbox."""
    if not configs:
        raise InvalidInputError("no camera to run: pass at least one --source")
    tokens: dict[str, int] = {}
    outboxes: dict[str, int] = {}
    for i, config in enumerate(configs, start=1):
        first = tokens.setdefault(config.token, i)
        if first != i:
            raise InvalidInputError(
                f"cameras {first} and {i} have the same device token: each camera is its own "
                "device (`visionloop devices add NAME` prints a token per camera)"
            )
        path = str(config.outbox_path.resolve())
        first = outboxes.setdefault(path, i)
        if first != i:
            raise InvalidInputError(
                f"cameras {first} and {i} share the outbox {config.outbox_path}: "
                "give each camera its own --outbox"
            )


class Cameras:
    """Runs one :class:`Agent` per camera config, in threads, over one shared model.

    ``clients`` (tests) are the cameras' HTTP clients, in order; ``watcher_client`` the model
    watcher's (default: a client with the first camera's token, closed at the end).
    """

    def __init__(
        self,
        configs: Sequence[AgentConfig],
        *,
        clients: Sequence[httpx.Client] | None = None,
        watcher_client: httpx.Client | None = None,
        announce: Callable[[str], None] | None = None,
    ) -> None:
        check_cameras(configs)
        if clients is not None and len(clients) != len(configs):
            raise InvalidInputError(f"{len(configs)} cameras need {len(configs)} clients")
        self.agents = [
            Agent(config, client=clients[i] if clients else None, announce=announce)
            for i, config in enumerate(configs)
        ]
        lead = configs[0]
        self._owns_watcher_client = watcher_client is None
        self.watcher_client = watcher_client or httpx.Client(
            base_url=lead.server,
            headers={"Authorization": f"Bearer {lead.token}"},
            timeout=lead.request_timeout_s,
        )
        self.shared: SharedModel | None = None

    def stop(self) -> None:
        """Like :meth:`Agent.stop`, for every camera (a second call stops their drains)."""
        for agent in self.agents:
            agent.stop()

    def run(self) -> list[AgentSummary]:
        """Load the model once, run every camera until each is done; summaries in camera order.

        Raises what an agent raised (the first, after every camera has finished).
        """
        try:
            return self._run()
        finally:
            if self._owns_watcher_client:
                self.watcher_client.close()

    def _run(self) -> list[AgentSummary]:
        lead = self.agents[0]
        c = lead.config
        watcher: ModelWatcher | None = None
        if any(agent.config.max_frames != 0 for agent in self.agents):
            watcher = ModelWatcher(
                self.watcher_client,
                cache_dir=c.model_cache_dir,
                load=lead.load,
                poll_s=c.model_poll_s,
            )
            production, problem = lead.probe(watcher)
            self.shared = SharedModel(watcher, lead.initial_detector(watcher, production, problem))
            for agent in self.agents:
                agent.shared = self.shared
        results: list[AgentSummary | None] = [None] * len(self.agents)
        errors: list[BaseException] = []

        def run_one(i: int, agent: Agent) -> None:
            try:
                results[i] = agent.run()
            except BaseException as exc:  # re-raised by run() once every camera is done
                log.error("camera %d stopped: %s", i + 1, exc)
                errors.append(exc)

        threads = [
            threading.Thread(target=run_one, args=(i, a), name=f"visionloop-camera-{i + 1}")
            for i, a in enumerate(self.agents)
        ]
        for thread in threads:
            thread.start()
        if watcher is not None and c.model is None:
            watcher.start()
        try:
            for thread in threads:
                while thread.is_alive():  # short joins: the main thread keeps taking signals
                    thread.join(timeout=0.2)
        finally:
            if watcher is not None:
                watcher.stop()
        if errors:
            raise errors[0]
        return [r for r in results if r is not None]
