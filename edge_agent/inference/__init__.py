"""TFLite inference: tflite_runtime where it installs, else ai_edge_litert."""

from edge_agent.inference.model import InferenceError, ModelLoadError, TFLiteModel, runtime_name

__all__ = ["InferenceError", "ModelLoadError", "TFLiteModel", "runtime_name"]
