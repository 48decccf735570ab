"""The ``hybrid-tui`` command (room: app): one module per command group, launching a run,
export-replay and the demo. Holds no logic a test of a lower room would need."""
