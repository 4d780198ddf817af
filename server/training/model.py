"""The fraud model: a small Keras MLP, its TFLite conversions, and scoring them as a device does.

The model takes the raw feature vector: its first layer standardises each feature with
the training slice's mean and variance, so the agent feeds exactly what
``FeatureExtractor`` returns. The variance is floored, so that a feature that never
varied in training (a merchant group with no store yet) cannot blow up when it first
appears.

Two TFLite variants, both with float32 input and output:

* ``float32``: the Keras graph as is.
* ``int8``: dynamic-range quantization, int8 weights and activations quantized on the
  fly inside each fully connected layer. Full-integer quantization was measured and
  rejected: it quantizes the raw input tensor with one scale for features whose ranges
  differ by more than an order of magnitude, and the sigmoid output to 256 levels; it
  lost 0.016 PR-AUC and left 36 distinct scores to set a threshold on.

TensorFlow is imported only when a function here runs. The device runtime
(``tflite_runtime``) must be loaded before TensorFlow in a process, or it cannot read
any model afterwards; :func:`load_keras` takes care of the order.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from edge_agent.features import N_FEATURES
from edge_agent.inference.model import InferenceError, ModelLoadError, TFLiteModel
from server.training.dataset import Dataset
from server.training.exceptions import ConversionError

logger = logging.getLogger(__name__)

Quantization = Literal["float32", "int8"]
QUANTIZATIONS: tuple[Quantization, ...] = ("float32", "int8")

INPUT_NAME = "features"
SCORE_BATCH = 4096

# Largest disagreement with Keras a converted model may show on evaluation data.
FLOAT32_MAX_ABS_DIFF = 1e-4
INT8_MEAN_ABS_DIFF = 2e-3
INT8_P99_ABS_DIFF = 2e-2

EpochCallback = Callable[[int, int], None]
"""(epochs done, epochs in all)."""


@dataclass(frozen=True)
class MlpConfig:
    """Shape and training schedule of the network; the defaults suit about 300k rows."""

    hidden_units: tuple[int, ...] = (128, 64)
    epochs: int = 12
    batch_size: int = 1024
    learning_rate: float = 3e-3
    positive_weight_exponent: float = 0.25
    """Fraud rows weigh (legitimate / fraud) ** this, about 3 at 1% fraud. In trials a
    square root (about 10) cost 0.007 PR-AUC on the held-out slice; a fourth root still
    lifts the rare class without that."""
    variance_floor: float = 0.01
    seed: int = 0


def load_keras() -> Any:
    """Import Keras (and TensorFlow) quietly; this module's imports loaded the TFLite runtime."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    return keras


def positive_weight(train: Dataset, exponent: float) -> float:
    positives = max(1, train.positives)
    return float(((len(train) - positives) / positives) ** exponent)


def train_mlp(train: Dataset, config: MlpConfig, *, on_epoch: EpochCallback | None = None) -> Any:
    """A trained Keras model that maps raw feature vectors to a fraud probability."""
    keras = load_keras()
    keras.utils.set_random_seed(config.seed)
    features = train.features
    normalization = keras.layers.Normalization(
        mean=features.mean(axis=0),
        variance=np.maximum(features.var(axis=0), config.variance_floor),
        name="standardize",
    )
    layers = [keras.Input((N_FEATURES,), name=INPUT_NAME), normalization]
    layers += [keras.layers.Dense(units, activation="relu") for units in config.hidden_units]
    layers.append(keras.layers.Dense(1, activation="sigmoid", name="score"))
    model = keras.Sequential(layers, name="fraud_mlp")
    steps = config.epochs * -(-len(train) // config.batch_size)
    model.compile(
        optimizer=keras.optimizers.Adam(
            keras.optimizers.schedules.CosineDecay(config.learning_rate, steps)
        ),
        loss="binary_crossentropy",
    )
    weight = positive_weight(train, config.positive_weight_exponent)
    callbacks = []
    if on_epoch is not None:
        callbacks.append(
            keras.callbacks.LambdaCallback(
                on_epoch_end=lambda epoch, _logs: on_epoch(epoch + 1, config.epochs)
            )
        )
    history = model.fit(
        features,
        train.labels,
        batch_size=config.batch_size,
        epochs=config.epochs,
        class_weight={0: 1.0, 1: weight},
        callbacks=callbacks,
        verbose=0,
    )
    logger.info(
        "trained MLP %s on %d rows (fraud weight %.2f), final loss %.5f",
        config.hidden_units,
        len(train),
        weight,
        history.history["loss"][-1],
    )
    return model


def keras_scores(model: Any, features: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    scores = model.predict(features, batch_size=SCORE_BATCH, verbose=0)
    return np.asarray(scores, dtype=np.float32).reshape(-1)


def convert(model: Any, quantization: Quantization) -> bytes:
    """The model as a .tflite flatbuffer, float32 in and out."""
    keras = load_keras()
    import tensorflow as tf

    with tempfile.TemporaryDirectory(prefix="edgeplane-savedmodel-") as directory:
        model.export(directory, format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(directory)
        if quantization == "int8":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            # Per-channel int8 dense weights need FULLY_CONNECTED version 12, which
            # tflite-runtime 2.14 on the devices does not have; per-tensor weights
            # convert to a version it runs (2026-12-03, TensorFlow 2.21).
            converter._experimental_disable_per_channel_quantization_for_dense_layers = True
        flatbuffer = bytes(converter.convert())
    logger.info(
        "converted to TFLite %s: %d bytes (Keras %s)",
        quantization,
        len(flatbuffer),
        keras.__version__,
    )
    return flatbuffer


def tflite_scores(model_bytes: bytes, features: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Scores from the agent's own TFLite loader, as a device would compute them."""
    try:
        model = TFLiteModel(model_bytes, n_features=N_FEATURES, max_batch=SCORE_BATCH)
        return model.predict(np.ascontiguousarray(features, dtype=np.float32))
    except (ModelLoadError, InferenceError) as exc:
        raise ConversionError(f"the device runtime cannot run the converted model: {exc}") from exc


@dataclass(frozen=True)
class Agreement:
    """How far a converted model's scores are from Keras's on the same rows."""

    max_abs_diff: float
    mean_abs_diff: float
    p99_abs_diff: float

    def acceptable(self, quantization: Quantization) -> bool:
        if quantization == "float32":
            return self.max_abs_diff <= FLOAT32_MAX_ABS_DIFF
        return self.mean_abs_diff <= INT8_MEAN_ABS_DIFF and self.p99_abs_diff <= INT8_P99_ABS_DIFF


def agreement(reference: npt.NDArray[np.float32], scores: npt.NDArray[np.float32]) -> Agreement:
    diff = np.abs(reference.astype(np.float64) - scores.astype(np.float64))
    return Agreement(
        max_abs_diff=float(diff.max()),
        mean_abs_diff=float(diff.mean()),
        p99_abs_diff=float(np.quantile(diff, 0.99)),
    )


def check_agreement(
    quantization: Quantization,
    reference: npt.NDArray[np.float32],
    scores: npt.NDArray[np.float32],
) -> Agreement:
    """Refuse a conversion whose scores drift from Keras beyond the tolerance."""
    result = agreement(reference, scores)
    if not np.all(np.isfinite(scores)) or not result.acceptable(quantization):
        raise ConversionError(f"TFLite {quantization} scores disagree with Keras: {result}")
    return result
