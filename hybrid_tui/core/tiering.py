"""Room: core. Model tiering (review 2.4, ``select_model_for_task``). Pure."""

from __future__ import annotations

from hybrid_tui.spec.models import ModelsSection, SisTask

#: Tasks estimated longer than this get the strong model.
LONG_TASK_MINUTES = 30


def select_model(task: SisTask, models: ModelsSection) -> str:
    """The task's ``model_hint`` if any; else ``models.strong`` for CRITICAL tasks, tasks
    over 30 minutes or tasks with security checks; else ``models.implementer``."""
    if task.model_hint:
        return task.model_hint
    priority = getattr(task.priority, "value", task.priority)
    if (
        priority == "CRITICAL"
        or task.estimated_duration_minutes > LONG_TASK_MINUTES
        or task.validation.security_checks
    ):
        return models.strong
    return models.implementer
