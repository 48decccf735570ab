"""Runtime: the engine that drives a run (room table: DESIGN.md).

Where things happen, by file:

- ``coordinator.py``: the loop, the only way to open a write transaction, and the one place
  effects are applied after a commit (built only by ``app/launch.py``);
- ``context.py``: what the steps see of the run (``RunContext``), what they hand back
  (``Effects``), what an attempt may ask of the loop (``AttemptLoop``);
- ``task_state.py``: where a task's state changes (the scheduler's change records, stored);
- ``dispatch.py``: where attempts start; ``attempt.py``: one attempt's life;
- ``settle.py``: where an attempt's end is decided with the scheduler and stored;
- ``integration.py``: where a finished attempt is committed onto the mission branch;
- ``controls.py``: where an operator's control command is applied;
- ``recovery.py``: crash recovery at start-up, and a run stopped by an error left paused;
- ``startup.py``: specs and the scheduler loaded from the store; ``planning.py``: issues planned;
- ``monitor.py``: resource samples and pauses; ``disk.py``: a full disk recognised;
- ``events.py`` / ``eventlog.py``: event rows and their ``events.jsonl`` mirror;
  ``record.py``: the recording of what attempts did; ``runlock.py``, ``faults.py``;
- ``backends.py``: a backend built by name (the coordinator's and a worker's);
- workers (``run --broker``): ``broker.py`` the Celery app, Redis keys and the two messages;
  ``remote.py`` the coordinator's side (live workers, slot -> worker, the lease, the patch
  checked); ``worker.py`` the worker process (``hybrid-tui worker``).
"""
