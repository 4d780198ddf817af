from __future__ import annotations

from fastapi import APIRouter, status

from server.auth.deps import OperatorActor, ViewerActor
from server.clusters import service as clusters_service
from server.clusters.deps import ClusterDep
from server.clusters.orm import Cluster
from server.clusters.schemas import ClusterCreate, ClusterList, ClusterRead, ClusterUpdate
from server.core.db import SessionDep

router = APIRouter(prefix="/clusters", tags=["clusters"])


def _read(cluster: Cluster) -> ClusterRead:
    return ClusterRead.model_validate(
        {
            **{c: getattr(cluster, c) for c in ClusterRead.model_fields if c != "has_kubeconfig"},
            "has_kubeconfig": cluster.kubeconfig is not None,
        }
    )


@router.get("", operation_id="clusters-list", response_model=ClusterList)
def list_clusters(session: SessionDep, _: ViewerActor) -> ClusterList:
    return ClusterList(items=[_read(c) for c in clusters_service.list_clusters(session)])


@router.post(
    "",
    operation_id="clusters-create",
    response_model=ClusterRead,
    status_code=status.HTTP_201_CREATED,
)
def create_cluster(session: SessionDep, actor: OperatorActor, body: ClusterCreate) -> ClusterRead:
    return _read(clusters_service.create_cluster(session, actor=actor, data=body))


@router.get("/{cluster_id}", operation_id="clusters-get", response_model=ClusterRead)
def get_cluster(_: ViewerActor, cluster: ClusterDep) -> ClusterRead:
    return _read(cluster)


@router.patch("/{cluster_id}", operation_id="clusters-update", response_model=ClusterRead)
def update_cluster(
    session: SessionDep, actor: OperatorActor, cluster: ClusterDep, body: ClusterUpdate
) -> ClusterRead:
    return _read(
        clusters_service.update_cluster(session, actor=actor, cluster_id=cluster.id, data=body)
    )


@router.delete(
    "/{cluster_id}", operation_id="clusters-delete", status_code=status.HTTP_204_NO_CONTENT
)
def delete_cluster(session: SessionDep, actor: OperatorActor, cluster: ClusterDep) -> None:
    clusters_service.delete_cluster(session, actor=actor, cluster_id=cluster.id)
