"""Task detail screen (room: tui): SIS, dependencies, dependents, every attempt with its log
tail, the estimate against the actual time, why a ready task waits, and the diff of the
integration commit (``git show``, read-only). ``l`` opens the latest attempt's whole log in
the pager (with follow), ``d`` the dependency tree."""

from __future__ import annotations

import json

from rich.console import Group
from rich.style import Style
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Static

from hybrid_tui.tui.data import NO_VALUE, commit_diff, human_duration, inert
from hybrid_tui.tui.fast_table import StableFooter
from hybrid_tui.tui.screens.log import LogScreen
from hybrid_tui.tui.screens.one_task import OneTaskScreen


def _section(title: str) -> Text:
    return Text(f"\n{title}", style="bold underline")


class TaskDetailScreen(OneTaskScreen):
    DEFAULT_CSS = """
    TaskDetailScreen #detail-title { height: 1; background: $panel; padding: 0 1; text-style: bold; }
    TaskDetailScreen VerticalScroll { height: 1fr; padding: 0 1; }
    """
    BINDINGS = [
        Binding("escape,q", "app.pop_screen", "Back"),
        Binding("r", "app.retry", "Retry"),
        Binding("c", "app.cancel_dependents", "Cancel deps"),
        Binding("b", "app.rollback", "Rollback"),
        Binding("l", "open_log", "Full log"),
        Binding("d", "app.dependency_tree", "Tree"),
    ]

    def compose(self) -> ComposeResult:
        yield Static("", id="detail-title")
        with VerticalScroll(id="detail-body"):
            yield Static("", id="detail-summary")
            yield Static("", id="detail-sis")
            yield Static("", id="detail-deps")
            yield Static("", id="detail-attempts")
            yield Static("", id="detail-diff")
        yield StableFooter(compact=True)

    def on_mount(self) -> None:
        self.reload()
        self.query_one(VerticalScroll).focus()

    def show_task(self, task_id: str) -> None:
        """Show another task on this (installed, reused) screen, from its top."""
        self.task_id = task_id
        self.reload()
        body = self.query_one(VerticalScroll)
        body.scroll_home(animate=False)
        body.focus()

    def reload(self) -> None:
        view = self.view
        task = view.task(self.task_id)
        if task is None:
            self.query_one("#detail-title", Static).update(Text(f"task {inert(self.task_id)}: not in this run"))
            return
        run = view.run_info()
        self.run = run
        title = Text()
        title.append(inert(task.task_id), style="bold")
        title.append(f"  {inert(task.title)}")
        self.query_one("#detail-title", Static).update(title)

        summary = Table.grid(padding=(0, 2))
        summary.add_column(style="bold")
        summary.add_column()
        wait = view.wait_reason(self.task_id)
        for label, value in (
            ("status", task.status),
            ("priority", f"{task.priority} (score {task.score:.0f})"),
            ("issue", task.issue_id),
            ("agent", task.agent_id or "-"),
            ("attempts", str(task.attempts)),
            ("estimate / actual", self._estimate_vs_actual(task)),
            ("waits because", NO_VALUE if wait is None else wait.message),
            ("cost", f"${task.cost_usd:.4f}"),
            ("failure", task.failure_type or "-"),
            *((("conflicts with", self._conflicts()),) if task.failure_type == "git_conflict" else ()),
            ("attention", task.attention_reason or "-"),
            ("commit", task.commit_sha or "-"),
        ):
            summary.add_row(Text(label), Text(inert(value)))
        self.query_one("#detail-summary", Static).update(summary)

        self.query_one("#detail-sis", Static).update(self._sis(task.spec_json, task.description))
        self.query_one("#detail-deps", Static).update(self._deps())
        self.query_one("#detail-attempts", Static).update(self._attempts(run))
        self.query_one("#detail-diff", Static).update(self._diff(run))

    def _conflicts(self) -> str:
        """The integrated tasks that touched this task's files: a retry meets them again."""
        found = self.view.conflicting_tasks(self.task_id)
        if not found:
            return "no integrated task touched its files (the base moved?)"
        return "; ".join(f"{other} ({', '.join(paths)})" for other, paths in found)

    def _estimate_vs_actual(self, task) -> str:
        """The SIS estimate next to the time the task took (or has taken so far): a 40-minute
        attempt of a 5-minute task stands out."""
        estimate = task.estimated_duration_minutes * 60 if task.estimated_duration_minutes else None
        if task.started_at is None:
            actual, word = None, "not started"
        elif task.finished_at is not None:
            actual, word = task.finished_at - task.started_at, "took"
        else:
            actual, word = self.view.now() - task.started_at, "running for"
        text = f"estimated {human_duration(estimate) if estimate else NO_VALUE} · {word}"
        if actual is not None:
            text += f" {human_duration(actual)}"
            if estimate:
                text += f" ({actual / estimate:.1f}× the estimate)"
        return text

    def action_open_log(self) -> None:
        attempts = self.view.attempts(self.task_id)
        with_log = [a for a in attempts if a.log_path]
        if not with_log:
            self.notify(f"{self.task_id} has no attempt log yet", severity="warning", markup=False)
            return
        latest = with_log[-1]
        running = latest.finished_at is None
        self.app.push_screen(LogScreen(self.view.log_path(latest, self.run),
                                       f"{self.task_id} attempt {latest.number} ({latest.outcome})", follow=running))

    def _sis(self, spec_json: str, fallback_description: str) -> Group:
        try:
            spec = json.loads(spec_json or "{}")
        except json.JSONDecodeError:
            spec = {}
        parts: list = [_section("Spec (SIS)")]
        parts.append(Text(inert(spec.get("description") or fallback_description or "(no description)", keep_newlines=True)))
        ops = spec.get("file_operations") or []
        parts.append(Text(f"file operations ({len(ops)})", style="bold"))
        for op in ops:
            line = Text(f"  {inert(str(op.get('op', '?'))):7} {inert(str(op.get('path', '?')))}")
            if op.get("intent"):
                line.append(f" — {inert(str(op['intent']))}", style=Style(dim=True))
            parts.append(line)
        validation = spec.get("validation") or {}
        commands = validation.get("commands") or []
        parts.append(Text(f"validation ({len(commands)} command(s), timeout {validation.get('timeout_seconds', 300)}s)", style="bold"))
        for command in commands:
            parts.append(Text(f"  $ {inert(str(command))}"))
        return Group(*parts)

    def _deps(self) -> Group:
        deps = self.view.dependencies(self.task_id)
        dependents = self.view.dependents(self.task_id)
        parts: list = [_section("Dependencies")]
        parts.append(Text(", ".join(f"{inert(t)} ({s})" for t, s in deps) or "none"))
        parts.append(_section("Dependents"))
        parts.append(Text(", ".join(f"{inert(t)} ({s})" for t, s in dependents) or "none"))
        return Group(*parts)

    def _attempts(self, run) -> Group:
        attempts = self.view.attempts(self.task_id)
        parts: list = [_section(f"Attempts ({len(attempts)})")]
        if not attempts:
            parts.append(Text("none yet"))
        table = Table(expand=False, show_edge=False, pad_edge=False, box=None, header_style="bold")
        for column in ("#", "agent", "model", "outcome", "failure", "in/out tok", "cost", "took"):
            table.add_column(column, no_wrap=True)
        for a in attempts:
            table.add_row(
                str(a.number), Text(inert(a.agent_id or "-")), Text(inert(a.model or a.backend or "-")),
                Text(inert(a.outcome)), Text(inert(a.failure_type or "-")),
                f"{a.input_tokens}/{a.output_tokens}", f"${a.cost_usd:.4f}", human_duration(a.duration_seconds),
            )
        if attempts:
            parts.append(table)
        for a in attempts:
            if a.failure_message:
                parts.append(Text(f"#{a.number} failure: ", style="bold").append(Text(inert(a.failure_message, keep_newlines=True))))
            tail = self.view.log_tail(a, run)
            if tail:
                parts.append(Text(f"#{a.number} log (tail; l: the whole log):", style="bold"))
                parts.append(Text(inert(tail, keep_newlines=True), style=Style(dim=True)))
        return Group(*parts)

    def _diff(self, run):
        commit = self.view.integration_commit(self.task_id)
        parts: list = [_section("Integration commit")]
        if commit is None:
            parts.append(Text("not integrated"))
            return Group(*parts)
        if commit.reverted_by:
            parts.append(Text(f"reverted by {commit.reverted_by[:12]}", style="bold"))
        diff = inert(commit_diff(run.repo_path, commit.sha), keep_newlines=True)
        parts.append(Syntax(diff, "diff", theme="ansi_dark" if self.app.current_theme.dark else "ansi_light",
                            word_wrap=False, background_color="default"))
        return Group(*parts)
