from __future__ import annotations

import uuid

from server.common.schemas import RequestModel


class DesiredModelUpdate(RequestModel):
    model_id: uuid.UUID | None = None
