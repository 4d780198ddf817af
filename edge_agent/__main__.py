"""``python -m edge_agent``: the agent's commands without the rest of ``edgeplane``."""

from edge_agent.cli import agent_app

agent_app(prog_name="edgeplane agent")
