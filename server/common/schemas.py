"""Base classes for the schemas at the API's edge."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class RequestModel(BaseModel):
    """A request body: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


class ReadModel(BaseModel):
    """A response body built from an ORM object."""

    model_config = ConfigDict(from_attributes=True)
