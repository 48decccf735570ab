"""The ``anthropic`` backend: Claude as L2 planner (forced ``submit_sis``) and L3 implementer (tool loop).

Room: agents. Uses the official SDK; credentials come from the environment and never
leave ``client.py`` (see :func:`~.client.redact`).
"""

from .client import RateLimiters, classify_error, make_client
from .implementer import AnthropicImplementer
from .planner import AnthropicPlanner

__all__ = ["AnthropicImplementer", "AnthropicPlanner", "RateLimiters", "classify_error", "make_client"]
