"""A TFLite model that scores feature matrices in micro-batches.

Resizing an interpreter's input re-plans its memory and the XNNPACK delegate, which
costs more than scoring a small batch. So the model keeps one interpreter per batch
size bucket (1, 4, 16, ... up to ``max_batch``), each allocated once, and pads a batch
up to the next bucket. A model whose batch dimension cannot be resized is fed in
chunks of its fixed batch size.

Not thread-safe: the scoring loop is the only caller.
"""

from __future__ import annotations

import logging
from typing import Any, Final

import numpy as np
import numpy.typing as npt

try:
    from tflite_runtime.interpreter import Interpreter

    _RUNTIME = "tflite_runtime"
except ImportError:  # pragma: no cover - the other runtime, on arm64 or Python 3.12+
    from ai_edge_litert.interpreter import Interpreter

    _RUNTIME = "ai_edge_litert"

logger = logging.getLogger(__name__)

_BUCKET_GROWTH: Final = 4
_INTEGER_DTYPES: Final = (np.int8, np.uint8)


class ModelLoadError(ValueError):
    """The model cannot serve: unreadable, or inputs and outputs of the wrong shape."""


class InferenceError(RuntimeError):
    """The interpreter failed while scoring."""


def runtime_name() -> str:
    """Which TFLite runtime this process uses (for telemetry and logs)."""
    return _RUNTIME


def _buckets(max_batch: int) -> tuple[int, ...]:
    sizes = [1]
    while sizes[-1] < max_batch:
        sizes.append(min(sizes[-1] * _BUCKET_GROWTH, max_batch))
    return tuple(sizes)


class _Slot:
    """One interpreter allocated for one batch size."""

    __slots__ = ("batch", "input_index", "interpreter", "output_index")

    def __init__(self, interpreter: Any, batch: int, input_index: int, output_index: int) -> None:
        self.interpreter = interpreter
        self.batch = batch
        self.input_index = input_index
        self.output_index = output_index


class TFLiteModel:
    """Scores ``(n, n_features)`` float32 matrices; returns ``(n,)`` float32 scores."""

    def __init__(
        self,
        model_bytes: bytes,
        *,
        n_features: int,
        max_batch: int = 1024,
        num_threads: int = 1,
    ) -> None:
        self._bytes = model_bytes
        self._n_features = n_features
        self._num_threads = num_threads
        try:
            probe = self._new_interpreter()
            inputs = probe.get_input_details()
            outputs = probe.get_output_details()
        except (ValueError, RuntimeError) as exc:
            raise ModelLoadError(f"the interpreter cannot load the model: {exc}") from exc
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelLoadError(
                f"the model has {len(inputs)} inputs and {len(outputs)} outputs; expected 1 and 1"
            )
        shape = [int(d) for d in inputs[0]["shape"]]
        signature = [int(d) for d in inputs[0].get("shape_signature", inputs[0]["shape"])]
        if len(shape) != 2 or shape[1] != n_features:
            raise ModelLoadError(
                f"the model takes input {shape}; this agent feeds [n, {n_features}]"
            )
        out_shape = [int(d) for d in outputs[0]["shape"]]
        if not (len(out_shape) == 1 or (len(out_shape) == 2 and out_shape[1] == 1)):
            raise ModelLoadError(f"the model outputs {out_shape}; expected one score per row")
        self._input_dtype = np.dtype(inputs[0]["dtype"])
        self._output_dtype = np.dtype(outputs[0]["dtype"])
        self._input_quant = inputs[0]["quantization"]
        self._output_quant = outputs[0]["quantization"]
        self._fixed_batch = shape[0]
        self._resizable = signature[0] == -1
        self._buckets = _buckets(max_batch) if self._resizable else (self._fixed_batch,)
        self._slots: dict[int, _Slot] = {}
        self._probe = probe

    @property
    def max_batch(self) -> int:
        return self._buckets[-1]

    def _new_interpreter(self) -> Any:
        return Interpreter(model_content=self._bytes, num_threads=self._num_threads)

    def _slot(self, batch: int) -> _Slot:
        slot = self._slots.get(batch)
        if slot is not None:
            return slot
        interpreter = self._probe if not self._slots else self._new_interpreter()
        input_index = int(interpreter.get_input_details()[0]["index"])
        output_index = int(interpreter.get_output_details()[0]["index"])
        if self._resizable:
            interpreter.resize_tensor_input(input_index, [batch, self._n_features], strict=True)
        interpreter.allocate_tensors()
        slot = _Slot(interpreter, batch, input_index, output_index)
        self._slots[batch] = slot
        return slot

    def _quantize(self, x: npt.NDArray[np.float32]) -> npt.NDArray[Any]:
        if self._input_dtype == np.float32:
            return x
        scale, zero_point = self._input_quant
        info = np.iinfo(self._input_dtype)
        quantized = np.clip(np.round(x / scale + zero_point), info.min, info.max)
        result: npt.NDArray[Any] = quantized.astype(self._input_dtype)
        return result

    def _dequantize(self, y: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
        if self._output_dtype in _INTEGER_DTYPES:
            scale, zero_point = self._output_quant
            return (y.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)
        return np.asarray(y, dtype=np.float32)

    def _run(self, slot: _Slot, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        rows = x.shape[0]
        if rows < slot.batch:
            padded = np.zeros((slot.batch, self._n_features), dtype=np.float32)
            padded[:rows] = x
            x = padded
        interpreter = slot.interpreter
        interpreter.set_tensor(slot.input_index, self._quantize(x))
        interpreter.invoke()
        y = interpreter.get_tensor(slot.output_index)
        return self._dequantize(y.reshape(-1)[:rows])

    def warm_up(self) -> None:
        """Allocate every bucket now rather than on the first busy second."""
        for batch in self._buckets:
            self.predict(np.zeros((batch, self._n_features), dtype=np.float32))

    def predict(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Raw scores of each row (not checked for range or finiteness: the caller decides)."""
        rows = x.shape[0]
        if rows == 0:
            return np.empty(0, dtype=np.float32)
        try:
            if rows <= self._buckets[-1]:
                batch = next(b for b in self._buckets if b >= rows)
                return self._run(self._slot(batch), x)
            largest = self._buckets[-1]
            slot = self._slot(largest)
            parts = [self._run(slot, x[i : i + largest]) for i in range(0, rows, largest)]
            return np.concatenate(parts)
        except (ValueError, RuntimeError) as exc:
            raise InferenceError(f"{type(exc).__name__}: {exc}") from exc
