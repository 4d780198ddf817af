"""Clusters: K3s edge clusters and the EKS/AKS clusters that workloads federate to."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.audit import service as audit_service
from server.clusters.exceptions import ClusterNameTaken, ClusterNotFound
from server.clusters.orm import Cluster
from server.clusters.schemas import ClusterCreate, ClusterUpdate
from server.common.actor import Actor


def get_cluster(session: Session, cluster_id: uuid.UUID) -> Cluster:
    cluster = session.get(Cluster, cluster_id)
    if cluster is None:
        raise ClusterNotFound(f"cluster {cluster_id} does not exist")
    return cluster


def list_clusters(session: Session) -> list[Cluster]:
    return list(session.scalars(select(Cluster).order_by(Cluster.name)))


def create_cluster(session: Session, *, actor: Actor, data: ClusterCreate) -> Cluster:
    if session.scalar(select(Cluster.id).where(Cluster.name == data.name)) is not None:
        raise ClusterNameTaken(f"a cluster named {data.name!r} exists")
    cluster = Cluster(
        name=data.name,
        kind=data.kind,
        region=data.region,
        labels=data.labels,
        api_server_url=str(data.api_server_url) if data.api_server_url else None,
        kubeconfig=data.kubeconfig,
    )
    session.add(cluster)
    session.flush()
    audit_service.record(
        session,
        actor=actor,
        action="cluster.create",
        target_type="cluster",
        target_id=cluster.id,
        details={
            "name": data.name,
            "kind": data.kind.value,
            "kubeconfig": data.kubeconfig is not None,
        },
    )
    return cluster


def update_cluster(
    session: Session, *, actor: Actor, cluster_id: uuid.UUID, data: ClusterUpdate
) -> Cluster:
    cluster = get_cluster(session, cluster_id)
    changes = data.model_dump(exclude_unset=True, mode="json")
    for field, value in changes.items():
        setattr(cluster, field, value)
    session.flush()
    if "kubeconfig" in changes:
        changes["kubeconfig"] = "replaced"
    audit_service.record(
        session,
        actor=actor,
        action="cluster.update",
        target_type="cluster",
        target_id=cluster.id,
        details=changes,
    )
    return cluster


def delete_cluster(session: Session, *, actor: Actor, cluster_id: uuid.UUID) -> None:
    cluster = get_cluster(session, cluster_id)
    session.delete(cluster)
    session.flush()
    audit_service.record(
        session,
        actor=actor,
        action="cluster.delete",
        target_type="cluster",
        target_id=cluster_id,
        details={"name": cluster.name},
    )
