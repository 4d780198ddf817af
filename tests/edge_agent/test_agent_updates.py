"""Following the desired state: install, refuse and roll back locally while scoring goes on.

The control plane's desired-state route and model registry are stood in for by a small
local HTTP server that serves ``GET /api/v1/agent/desired`` and the artifact files,
and checks the device's bearer credential on every request.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.config import load_settings
from edge_agent.daemon import Agent
from edge_agent.features import FEATURE_SPEC_VERSION
from edge_agent.protocol.artifact import ModelManifest, sign_manifest
from edge_agent.protocol.messages import DesiredModel, DesiredState
from edge_agent.protocol.topics import Channel, device_topic
from edge_agent.protocol.transaction import Transaction
from tests.edge_agent.support import (
    MODELS,
    PUBLIC_KEY_FILE,
    ControlPlaneStandIn,
    traffic,
    write_credentials,
)
from tests.processes import Mosquitto, free_port, wait_for

pytestmark = pytest.mark.timeout(180)


@dataclass
class Artifact:
    model_bytes: bytes
    manifest_bytes: bytes
    signature: str

    @classmethod
    def fixture(cls, name: str) -> Artifact:
        folder = MODELS / name
        return cls(
            (folder / "model.tflite").read_bytes(),
            (folder / "manifest.json").read_bytes(),
            (folder / "manifest.sig").read_text().strip(),
        )

    @property
    def manifest(self) -> ModelManifest:
        return ModelManifest.model_validate_json(self.manifest_bytes)


@dataclass
class Harness:
    agent: Agent
    stand_in: ControlPlaneStandIn
    http_port: int
    generation: int = 0

    def desire(
        self,
        name: str,
        artifact: Artifact,
        *,
        feature_spec_version: int = FEATURE_SPEC_VERSION,
        generation: int | None = None,
    ) -> DesiredState:
        """Publish an artifact and make it the desired model over REST."""
        model_url, manifest_url = self.stand_in.publish(
            name, model_bytes=artifact.model_bytes, manifest_bytes=artifact.manifest_bytes
        )
        if generation is None:
            self.generation += 1
            generation = self.generation
        manifest = artifact.manifest
        state = DesiredState(
            device_id=self.agent.device_id,
            generation=generation,
            model=DesiredModel(
                name=manifest.name,
                version=manifest.version,
                url=model_url,
                manifest_url=manifest_url,
                sha256=manifest.tflite_sha256,
                signature=artifact.signature,
                feature_spec_version=feature_spec_version,
            ),
            issued_at=datetime.now(UTC),
        )
        self.stand_in.desired = state.model_dump_json().encode()
        return state

    def poll(self) -> None:
        """The REST fallback, now rather than after the poll interval."""
        before = self.agent.manager.last_update
        target = self.generation
        self.agent.follower.poll_now()
        wait_for(
            lambda: (
                self.agent.manager.generation >= target and self.agent.manager.last_update != before
            ),
            timeout=30,
            what=f"desired generation {target} to be handled",
        )

    def score(self, tx: Transaction) -> dict[str, object]:
        response = httpx.post(
            f"http://127.0.0.1:{self.http_port}/v1/score",
            content=tx.model_dump_json(),
            timeout=10,
        )
        assert response.status_code == 200, response.text
        body: dict[str, object] = response.json()
        return body


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    state_dir = tmp_path / "state"
    http_port = free_port()
    with ControlPlaneStandIn("placeholder") as stand_in:
        credentials = write_credentials(state_dir, mqtt_port=1, control_plane_url=stand_in.url)
        stand_in.credential = credentials.credential.get_secret_value()
        settings = load_settings(
            None,
            state_dir=state_dir,
            trusted_key_files=[PUBLIC_KEY_FILE],
            bootstrap_model=MODELS / "mlp-1",
            desired_poll_seconds=3600,
            telemetry_interval_seconds=3600,
            mqtt={"enabled": False},
            http={"port": http_port},
        )
        agent = Agent(settings, credentials)
        agent.start()
        try:
            yield Harness(agent, stand_in, http_port)
        finally:
            agent.shutdown()


def test_refuses_bad_models_and_rolls_back_while_scoring_goes_on(harness: Harness) -> None:
    agent = harness.agent
    stream = iter(traffic(200))
    assert harness.score(next(stream))["model_version"] == "1"

    harness.desire("v2", Artifact.fixture("mlp-2"))
    harness.poll()
    assert agent.manager.active is not None
    assert (agent.manager.active.version, agent.manager.previous.version) == ("2", "1")  # type: ignore[union-attr]
    assert harness.score(next(stream))["model_version"] == "2"
    assert all(authorised for _, authorised in harness.stand_in.requests)

    good = Artifact.fixture("mlp-1")
    tampered = bytearray(good.model_bytes)
    tampered[len(tampered) // 2] ^= 0xFF
    other_key = Ed25519PrivateKey.generate()
    refusals = {
        "tampered": (Artifact(bytes(tampered), good.manifest_bytes, good.signature), "sha256"),
        "wrong-signature": (
            Artifact(
                good.model_bytes, good.manifest_bytes, sign_manifest(good.manifest_bytes, other_key)
            ),
            "signature",
        ),
        "spec-v2": (Artifact.fixture("spec-v2"), "feature spec v2"),
        "nan": (Artifact.fixture("nan"), "not finite"),
        "wrong-shape": (Artifact.fixture("wrong-shape"), "input"),
    }
    agent.manager.take_load_failures()  # start counting here
    for name, (artifact, reason) in refusals.items():
        harness.desire(name, artifact)
        harness.poll()
        assert agent.manager.last_update is not None
        assert "refused" in agent.manager.last_update, name
        assert reason in agent.manager.last_update, (name, agent.manager.last_update)
        assert agent.manager.active is not None
        assert agent.manager.active.version == "2", name
        decision = harness.score(next(stream))
        assert decision["model_version"] == "2", name
    assert agent.manager.take_load_failures() == len(refusals)  # as telemetry reports them

    # A desired state naming a feature spec this agent lacks is refused before download.
    harness.desire("spec-v9", Artifact.fixture("mlp-1"), feature_spec_version=9)
    harness.poll()
    assert "feature spec v9" in (agent.manager.last_update or "")
    assert harness.stand_in.downloads("spec-v9") == 0

    # An older generation (a stale retained message, a slow REST reply) is ignored.
    current_generation = agent.manager.generation
    agent.follower.apply(harness.desire("old", Artifact.fixture("mlp-1"), generation=1))
    assert agent.manager.generation == current_generation
    assert agent.manager.active.version == "2"

    # A model that passed every check but produces NaN on live traffic is rolled back by
    # itself, and the very batch that exposed it is scored again with the previous model.
    broken = agent.manager.active
    assert broken is not None
    broken.model.predict = lambda x: np.full(len(x), np.nan, dtype=np.float32)  # type: ignore[method-assign]
    decision = harness.score(next(stream))
    assert decision["model_version"] == "1"
    assert "rolled back 2 to 1" in (agent.manager.last_update or "")
    assert agent.status()["model_version"] == "1"

    # The rolled-back model is not installed again, even under a newer generation.
    harness.desire("v2-again", Artifact.fixture("mlp-2"))
    harness.poll()
    assert agent.manager.active.version == "1"
    assert harness.stand_in.downloads("v2-again") == 0


def test_follows_the_retained_desired_message_over_mqtt(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "mosquitto")
    broker.start()
    state_dir = tmp_path / "state"
    http_port = free_port()
    try:
        with ControlPlaneStandIn("placeholder") as stand_in:
            credentials = write_credentials(
                state_dir, mqtt_port=broker.port, control_plane_url=stand_in.url
            )
            stand_in.credential = credentials.credential.get_secret_value()
            # The control plane's retained message is there before the device connects.
            harness_artifact = Artifact.fixture("mlp-2")
            model_url, manifest_url = stand_in.publish(
                "v2",
                model_bytes=harness_artifact.model_bytes,
                manifest_bytes=harness_artifact.manifest_bytes,
            )
            state = DesiredState(
                device_id=credentials.device_id,
                generation=7,
                model=DesiredModel(
                    name="fraud-mlp-fixture",
                    version="2",
                    url=model_url,
                    manifest_url=manifest_url,
                    sha256=harness_artifact.manifest.tflite_sha256,
                    signature=harness_artifact.signature,
                    feature_spec_version=FEATURE_SPEC_VERSION,
                ),
                rollout_id=str(uuid.uuid4()),
                issued_at=datetime.now(UTC),
            )
            publisher = mqtt.Client(CallbackAPIVersion.VERSION2)
            publisher.connect("127.0.0.1", broker.port)
            publisher.loop_start()
            topic = device_topic(credentials.device_id, Channel.DESIRED)
            publisher.publish(topic, state.model_dump_json(), qos=1, retain=True).wait_for_publish(
                10
            )

            settings = load_settings(
                None,
                state_dir=state_dir,
                trusted_key_files=[PUBLIC_KEY_FILE],
                bootstrap_model=MODELS / "mlp-1",
                desired_poll_seconds=3600,
                telemetry_interval_seconds=3600,
                shutdown_flush_seconds=0,  # nothing confirms here
                mqtt={"version": "3.1.1"},
                http={"port": http_port},
            )
            agent = Agent(settings, credentials)
            agent.start()
            try:
                wait_for(
                    lambda: agent.manager.generation == 7,
                    timeout=30,
                    what="the retained desired state to be handled",
                )
                assert agent.manager.active is not None
                assert agent.manager.active.version == "2"
                # An older generation arriving later changes nothing. (Messages on one topic
                # arrive in order, so once generation 8 is handled, 3 has been too.)
                first = Artifact.fixture("mlp-1")
                old_url, old_manifest_url = stand_in.publish(
                    "v1", model_bytes=first.model_bytes, manifest_bytes=first.manifest_bytes
                )
                old_model = DesiredModel(
                    name="fraud-mlp-fixture",
                    version="1",
                    url=old_url,
                    manifest_url=old_manifest_url,
                    sha256=first.manifest.tflite_sha256,
                    signature=first.signature,
                    feature_spec_version=FEATURE_SPEC_VERSION,
                )
                for generation, model in ((3, old_model), (8, state.model)):
                    update = state.model_copy(update={"generation": generation, "model": model})
                    publisher.publish(
                        topic, update.model_dump_json(), qos=1, retain=True
                    ).wait_for_publish(10)
                wait_for(
                    lambda: agent.manager.generation == 8,
                    timeout=30,
                    what="generation 8 to be handled",
                )
                assert agent.manager.active.version == "2"
                assert "installed 2 from desired generation 7" in (agent.manager.last_update or "")
                assert stand_in.downloads("v1") == 0
            finally:
                agent.shutdown()
                publisher.disconnect()
                publisher.loop_stop()
    finally:
        broker.stop()
