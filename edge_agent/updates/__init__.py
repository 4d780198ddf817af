"""Model updates: download, verify, swap atomically, keep the previous model for rollback."""

from edge_agent.updates.follower import DesiredStateFollower
from edge_agent.updates.manager import LoadedModel, ModelManager, scores_are_valid
from edge_agent.updates.store import ModelStore

__all__ = ["DesiredStateFollower", "LoadedModel", "ModelManager", "ModelStore", "scores_are_valid"]
