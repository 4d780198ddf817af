from server.core.errors import Conflict, NotFound


class RolloutNotFound(NotFound):
    pass


class RolloutConflict(Conflict):
    """Another rollout is already active on the same target."""


class RolloutStateError(Conflict):
    """The action does not apply to the rollout (or model) in its current state."""
