"""The operations console (room: tui): a Textual app that is a view over the store.

It writes nothing but control commands (``Store.enqueue_control``); see ``app.py``.
"""

from hybrid_tui.tui.app import HybridApp, run_console

__all__ = ["HybridApp", "run_console"]
