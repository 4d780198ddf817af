from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Path

from server.clusters import service as clusters_service
from server.clusters.orm import Cluster
from server.core.db import SessionDep


def load_cluster(session: SessionDep, cluster_id: Annotated[uuid.UUID, Path()]) -> Cluster:
    return clusters_service.get_cluster(session, cluster_id)


ClusterDep = Annotated[Cluster, Depends(load_cluster)]
