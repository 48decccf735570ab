"""The ``cli`` backend: Claude Code, aider, Codex or any agent CLI as an implementer.

Room: agents. :mod:`.command` builds the command line (presets and raw templates),
:mod:`.reports` reads what each CLI reports (cost, tokens, model, session, its own errors),
:mod:`.implementer` runs one attempt. The runtime builds it with :func:`make_implementer`.
"""

from __future__ import annotations

from hybrid_tui.agents.cli.command import AGENT_SCRATCH_GLOBS, PLACEHOLDERS, PRESETS, TemplateError, check_template
from hybrid_tui.agents.cli.implementer import CliImplementer, make_implementer

__all__ = ["AGENT_SCRATCH_GLOBS", "PLACEHOLDERS", "PRESETS", "CliImplementer", "TemplateError", "check_template",
           "make_implementer"]
