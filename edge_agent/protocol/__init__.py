"""Wire models shared between devices and the control plane."""

from edge_agent.protocol.transaction import Transaction

__all__ = ["Transaction"]
