"""Follow the desired state: the retained MQTT message, with REST polling as fallback.

Both sources hand a :class:`DesiredState` to :meth:`DesiredStateFollower.offer`; the
follower's own thread does the slow part (download, verify, load), so neither the
MQTT network thread nor the scoring loop ever waits for it. A generation older than
the last one handled is ignored; a failed download is retried on the next poll.
"""

from __future__ import annotations

import logging
import threading
import time

from edge_agent.control_plane import ControlPlaneClient, ControlPlaneError
from edge_agent.protocol.messages import DesiredState
from edge_agent.updates.manager import SUPPORTED_FEATURE_SPECS, ModelManager, rejection_key

logger = logging.getLogger(__name__)

_RETRY_SECONDS = 30.0


class DesiredStateFollower:
    def __init__(
        self,
        manager: ModelManager,
        *,
        device_id: str,
        client: ControlPlaneClient | None,
        poll_seconds: float,
        download_max_bytes: int,
    ) -> None:
        self._manager = manager
        self._device_id = device_id
        self._client = client
        self._poll_seconds = poll_seconds
        self._max_bytes = download_max_bytes
        self._offered: DesiredState | None = None
        self._wake = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="desired-state", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._wake:
            self._wake.notify_all()
        self._thread.join(timeout=10)

    def offer(self, state: DesiredState) -> None:
        """Take a desired state from any source; the newest generation wins."""
        with self._wake:
            if self._offered is None or state.generation >= self._offered.generation:
                self._offered = state
            self._wake.notify_all()

    def poll_now(self) -> None:
        """Ask the control plane over REST (the fallback when the retained message is late)."""
        if self._client is None:
            return
        try:
            state = self._client.desired()
        except ControlPlaneError as exc:
            logger.info("desired state over REST unavailable: %s", exc)
            return
        if state is not None:
            self.offer(state)

    def _run(self) -> None:
        next_poll = time.monotonic()
        while not self._stop.is_set():
            if time.monotonic() >= next_poll:
                self.poll_now()
                next_poll = time.monotonic() + self._poll_seconds
            with self._wake:
                if self._offered is None:
                    self._wake.wait(timeout=max(0.0, next_poll - time.monotonic()))
                state, self._offered = self._offered, None
            if state is None or self._stop.is_set():
                continue
            if not self.apply(state):
                next_poll = min(next_poll, time.monotonic() + _RETRY_SECONDS)

    def apply(self, state: DesiredState) -> bool:
        """Act on one desired state; False when it should be tried again later."""
        if state.device_id != self._device_id:
            logger.warning("ignoring a desired state for device %s", state.device_id)
            return True
        manager = self._manager
        if state.generation < manager.generation:
            logger.info(
                "ignoring desired generation %d (already at %d)",
                state.generation,
                manager.generation,
            )
            return True
        desired = state.model
        active = manager.active
        if desired is None:
            manager.set_generation(state.generation)
            return True
        if (
            active is not None
            and active.version == desired.version
            and active.manifest.tflite_sha256 == desired.sha256
        ):
            manager.set_generation(state.generation)
            return True
        if (reason := manager.rejected_reason(desired.sha256, desired.signature)) is not None:
            if state.generation > manager.generation:
                current = active.version if active else "none"
                manager.note(
                    f"not installing {desired.version}, refused before ({reason}); "
                    f"keeping {current}"
                )
            manager.set_generation(state.generation)
            return True
        if desired.feature_spec_version not in SUPPORTED_FEATURE_SPECS:
            manager.refuse(
                rejection_key(desired.sha256, desired.signature),
                f"model {desired.version} needs feature spec v{desired.feature_spec_version}; "
                f"this agent implements {sorted(SUPPORTED_FEATURE_SPECS)}",
            )
            manager.set_generation(state.generation)
            return True
        if self._client is None:
            logger.warning("a desired model but no control plane to download it from")
            return True
        try:
            manifest_bytes = self._client.download(desired.manifest_url, max_bytes=1024 * 1024)
            model_bytes = self._client.download(desired.url, max_bytes=self._max_bytes)
        except ControlPlaneError as exc:
            logger.warning("cannot download model %s: %s", desired.version, exc)
            return False
        manager.install(
            manifest_bytes=manifest_bytes,
            signature=desired.signature,
            model_bytes=model_bytes,
            origin=f"desired generation {state.generation}",
            expected_sha256=desired.sha256,
            expected_version=desired.version,
        )
        manager.set_generation(state.generation)
        return True
