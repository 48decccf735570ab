"""Sample missions: the synthetic mission generator (``hybrid-tui generate``).

Room: samples. Writes mission folders (mission.toml, issues/, sis/, repo/) built from the
spec models; touches nothing else.
"""

from .generate import generate_mission

__all__ = ["generate_mission"]
