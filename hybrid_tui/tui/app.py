"""The console app (room: tui). A view over the store; writes only control commands.

A timer polls the store for rows changed since the last version seen (the next poll is
scheduled only after the previous one finished) and hands each pane its diff. Every
operator action is ``store.enqueue_control(run_id, command, source="tui", **args)``; the
coordinator applies it and marks the Control row applied or rejected, and a rejection is
shown as a notification. With ``coordinator=`` the app also runs the coordinator on a
worker; without one it attaches to a run driven by another process.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any, Callable, Iterable

import psutil
from rich.text import Text
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.events import Resize
from textual.filter import NoColor
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Static
from textual.worker import Worker, WorkerState

from hybrid_tui.store import queries
from hybrid_tui.store.db import Store
from hybrid_tui.vocabulary import (
    DEAD_STATUSES,
    EXIT_STOPPED,
    IN_FLIGHT_STATUSES,
    LIVE_RUN_STATUSES,
    QUEUED_STATUSES,
    coordinator_alive,
)
from hybrid_tui.tui.data import CostSummary, Delta, RunInfo, StoreView, human_duration, inert
from hybrid_tui.tui.fast_table import StableFooter
from hybrid_tui.tui.panes.style import is_compact, show_text
from hybrid_tui.tui.panes import AgentPool, CostBurn, EventLog, FileLocks, ResourceGauges, RunHeader, TaskQueue
from hybrid_tui.tui.screens import (
    AttentionScreen,
    BudgetScreen,
    ConfirmScreen,
    DependencyScreen,
    HelpScreen,
    ScaleScreen,
    TaskDetailScreen,
)
from hybrid_tui.tui.themes import load_themes

AGE_REFRESH_SECONDS = 5.0

# Actions that change the mission: not reachable while a dialog is open.
OPERATOR_ACTIONS = {
    "toggle_pause", "pause_mission", "resume_mission", "retry", "cancel_dependents", "rollback", "scale_up", "scale_down",
    "scale_exact", "detail", "attention", "stop_mission", "retry_bulk", "set_budget", "toggle_mark",
    "dependency_tree", "search", "approve", "reject", "cancel_bulk",
}
# Of those, the ones that queue a control: a read-only console (``serve`` without
# ``--control``, ``attach --read-only``) offers none of them.
CONTROL_ACTIONS = OPERATOR_ACTIONS - {"detail", "attention", "toggle_mark", "dependency_tree", "search"}
# Actions on the dashboard's task table: on another screen (detail, log, tree, attention)
# they are hidden from its footer and do nothing. They were offered there ("/ Search",
# "w Panes"), overflowed an 80-column footer into a stray letter, and f, s or space changed
# the hidden dashboard; enter on the log pager opened the dashboard's selected task.
DASHBOARD_ACTIONS = {
    "search", "toggle_side", "sort", "reverse_sort", "filter", "filter_back", "toggle_mark", "clear_marks", "detail",
}
# Of those, the ones about the task list itself: hidden while the side panes have the body.
# The selected task's own keys too: r (no question asked) retried a task the operator could not see.
TASK_LIST_ACTIONS = {
    "sort", "reverse_sort", "filter", "filter_back", "toggle_mark", "clear_marks", "detail",
    "retry", "retry_bulk", "cancel_dependents", "cancel_bulk", "rollback", "dependency_tree", "approve", "reject",
}


class HybridApp(App[int]):
    TITLE = "hybrid-tui"
    CSS_PATH = "app.tcss"
    ENABLE_COMMAND_PALETTE = True

    # The footer shows the few keys an operator needs first (it must fit 80 columns whole);
    # `?` lists every key.
    BINDINGS = [
        # One key, the label of what it does now: "Pause" on a running run, "Resume" on a
        # paused one (the footer said "Pause" on a run its policy had paused).
        Binding("p", "pause_mission", "Pause"),
        Binding("p", "resume_mission", "Resume"),
        Binding("r", "retry", "Retry"),
        Binding("enter", "detail", "Detail"),
        Binding("slash", "search", "Search"),
        Binding("w", "toggle_side", "Panes"),
        Binding("question_mark", "help", "Keys"),
        Binding("q", "quit_console", "Quit"),
        # ctrl+q is Textual's "quit now": here it takes the same path as q (never a silent exit mid-run).
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True),
        Binding("c", "cancel_dependents", "Cancel deps", show=False),
        Binding("b", "rollback", "Rollback", show=False),
        Binding("a", "attention", "Attention", show=False),
        Binding("plus", "scale_up", "Pool+", show=False),
        Binding("minus", "scale_down", "Pool-", show=False),
        Binding("t", "cycle_theme", "Theme", show=False),
        Binding("s", "sort", "Sort", show=False),
        Binding("S", "reverse_sort", "Reverse sort", show=False),
        Binding("f", "filter", "Filter", show=False),
        Binding("F", "filter_back", "Filter back", show=False),
        Binding("equals_sign", "scale_exact", "Pool size", show=False),
        Binding("space", "toggle_mark", "Mark", show=False),
        Binding("u", "clear_marks", "Unmark all", show=False),
        Binding("R", "retry_bulk", "Retry marked / all failed like this", show=False),
        Binding("C", "cancel_bulk", "Cancel marked / the selected one's dependents", show=False),
        Binding("dollar_sign", "set_budget", "Budget", show=False),
        Binding("d", "dependency_tree", "Dependency tree", show=False),
        Binding("A", "approve", "Approve", show=False),
        Binding("X", "reject", "Reject", show=False),
    ]

    # (key, description) for the help screen; the same actions are in the command palette.
    KEY_HELP = [
        ("p", "pause the mission / resume it"),
        ("r", "retry the selected task"),
        ("space", "mark / unmark the selected task (u: unmark all)"),
        ("R", "retry the marked tasks, or every failed task of the selected one's failure type (asks first)"),
        ("C", "cancel the marked tasks, or the selected one's dependents (asks first)"),
        ("$", "raise (or lower) the mission budget"),
        ("d", "dependency tree of the selected task: ancestors and dependents, with states"),
        ("/", "search tasks by id or title (escape clears)"),
        ("j / k", "down / up (arrows too)"),
        ("g / G", "first / last task"),
        ("f / F", "next / previous status filter"),
        ("s / S", "next sort column / reverse it"),
        ("w", "side panes: agents, resources, cost, locks (full screen when small)"),
        ("c", "cancel the selected task's dependents (asks first)"),
        ("b", "roll back the selected task's commit (asks first)"),
        ("A / X", "approve / reject the selected task awaiting approval (X asks first)"),
        ("enter", "task detail: spec, attempts, estimate vs actual, diff (l: full log, follow)"),
        ("a", "tasks that need attention"),
        ("+ / -", "grow / shrink the agent pool by one"),
        ("t", "next theme"),
        ("?", "this help"),
        ("q / ctrl+q", "quit (asks while the mission runs; it stays resumable)"),
    ]

    def __init__(
        self,
        store: Store,
        run_id: str,
        *,
        coordinator: object | None = None,
        theme: str = "dark",
        clock: Callable[[], float] = time.time,
        poll_interval: float = 0.5,
        read_only: bool = False,
    ):
        super().__init__()
        self.read_only = read_only
        self.store = store
        self.run_id = run_id
        self.coordinator = coordinator
        self.clock = clock
        self.poll_interval = poll_interval
        self.view = StoreView(store, run_id, clock)
        self.run_info: RunInfo | None = None
        self.costs = CostSummary()
        self.attention = 0
        self.coordinator_exit: int | None = None
        self.coordinator_done = coordinator is None
        self.quitting = False
        self.sent_controls: dict[int, str] = {}  # control id -> what the operator asked, for feedback
        self.requested_pool: int | None = None
        self.poll_error = ""
        self.change_feed = None if store.is_sqlite else store.change_feed(run_id, slow_poll_seconds=3600)
        self._poll_timer = None
        self.coordinator_lost = False
        self._asking_quit = False  # shown in the header; set from the run's heartbeat each tick
        self.notices: list[str] = []
        self._detail_screen: TaskDetailScreen | None = None  # built ahead after the first frame, see open_detail
        self._last_age_refresh = 0.0
        self._hybrid_themes = load_themes()
        for t in self._hybrid_themes.values():
            self.register_theme(t)
        if theme not in self._hybrid_themes:
            raise ValueError(f"unknown theme {theme!r}; available: {', '.join(self._hybrid_themes)}")
        self.theme = theme
        if dumb_terminal():
            # Textual writes 24-bit colour whatever the terminal says (its strips ignore the
            # console's colour system); a TERM=dumb terminal gets none (bold, reverse stay).
            self._filters.append(NoColor())
        # The palette's Theme list offers what is registered: only ours, which load_themes
        # checked render (Textual's ansi-* themes crashed the panes' colour styles).
        for name in list(self.available_themes):
            if name not in self._hybrid_themes:
                self.unregister_theme(name)
        self.sub_title = run_id

    # -- layout ---------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield RunHeader(id="header")
        with Horizontal(id="body"):
            with Vertical(id="main"):
                yield TaskQueue(self.clock, id="tasks")
                yield Static("", id="summary")
                yield EventLog(id="events")
            with VerticalScroll(id="side"):
                yield AgentPool(id="agents")
                yield ResourceGauges(self.clock, id="resources")
                yield CostBurn(id="costs")
                yield FileLocks(id="locks")
        yield StableFooter(compact=True)

    def on_mount(self) -> None:
        # Keep the dashboard's panes: App.query_one searches the *current* screen, which
        # is the detail or attention screen while those are open.
        self.tasks_pane = self.query_one(TaskQueue)
        self.header_pane = self.query_one(RunHeader)
        self.agents_pane = self.query_one(AgentPool)
        self.resources_pane = self.query_one(ResourceGauges)
        self.costs_pane = self.query_one(CostBurn)
        self.locks_pane = self.query_one(FileLocks)
        self.events_pane = self.query_one(EventLog)
        self.summary_line = self.query_one("#summary", Static)
        self.body = self.query_one("#body")
        self.side = self.query_one("#side")
        self._apply_size(self.size.width, self.size.height)
        self.query_one("#task-table").focus()
        self.call_later(self._tick)
        # After the first frame (the dashboard first), so no key pays for composing the detail.
        self.call_after_refresh(self._build_detail_ahead)
        if self.change_feed is not None:
            self.set_interval(self.NOTIFY_CHECK_SECONDS, self._check_notified)
        if self.read_only:
            self.notify("read-only console: watch only, no control is sent", timeout=30, markup=False)
        if self.coordinator is not None:
            self.run_worker(
                self.coordinator.run(), exclusive=True, group="coordinator", name="coordinator", exit_on_error=False
            )

    def on_resize(self, event: Resize) -> None:
        self._apply_size(event.size.width, event.size.height)

    def _apply_size(self, width: int, height: int) -> None:
        self.set_class(is_compact(width, height), "-compact")
        if self.run_info is not None:
            self._update_summary(width)  # what fits on its line changed

    @property
    def compact(self) -> bool:
        return self.has_class("-compact")

    # -- polling --------------------------------------------------------------------
    # On a PostgreSQL store the console hears of each commit by LISTEN/NOTIFY: it checks for
    # a notification this often and polls at once, and otherwise polls only this many
    # times slower (the fallback that also moves the time-based views).
    NOTIFY_CHECK_SECONDS = 0.1
    SLOW_POLL_FACTOR = 4

    def _tick(self) -> None:
        try:
            self.poll_now()
        except NoMatches:
            return  # the app is shutting down and its widgets are gone: stop polling
        # Schedule the next poll only after this one finished (no pile-up when slow).
        if self.change_feed is not None and self.change_feed.listening:
            self._poll_timer = self.set_timer(self.poll_interval * self.SLOW_POLL_FACTOR, self._tick)
            return
        self._poll_timer = self.set_timer(self.poll_interval, self._tick)

    def _check_notified(self) -> None:
        """A notification for this run arrived: poll now (the slow poll starts over)."""
        if self.change_feed is None or not self.change_feed.changed():
            return
        if self._poll_timer is not None:
            self._poll_timer.stop()
        self._tick()

    def poll_now(self) -> Delta | None:
        now = self.clock()
        try:
            delta = self.view.poll(now)
            outcomes = self.view.control_outcomes(self.sent_controls)
        except Exception as exc:  # store gone or locked too long: say so, keep polling
            message = f"store unavailable: {exc}"
            if message != self.poll_error:
                self.poll_error = message
                self.notify(message, severity="error", markup=False)
            return None
        self.poll_error = ""
        with self.batch_update():
            self._apply(delta, now)
        for outcome in outcomes:
            label = self.sent_controls.pop(outcome.control_id, outcome.command)
            if outcome.status == "rejected":
                self.notify(f"{label} refused: {outcome.result or 'no reason given'}", severity="error",
                            timeout=10, markup=False)
                if outcome.command == "scale":
                    self.requested_pool = None
            else:
                self.notify(f"{label}: {outcome.result or 'done'}", timeout=3, markup=False)
        return delta

    def _apply(self, delta: Delta, now: float) -> None:
        run = delta.run
        before = self.run_info
        self.run_info = run
        if before is None or (before.status == "paused") != (run.status == "paused"):
            self.refresh_bindings()  # p's label: Pause or Resume
        if self.requested_pool is not None and run.pool_target == self.requested_pool:
            self.requested_pool = None
        if delta.attention_count is not None:
            self.attention = delta.attention_count
        if delta.costs is not None:
            self.costs = delta.costs
        tasks = self.tasks_pane
        tasks.apply(delta.tasks, now)
        if now - self._last_age_refresh >= AGE_REFRESH_SECONDS or delta.run_changed:
            tasks.refresh_ages(now)
            self._last_age_refresh = now
        lost = not self.coordinator_present(now)
        if lost != self.coordinator_lost:
            self.coordinator_lost = lost
            self.header_pane.coordinator_lost = lost
            self.header_pane.repaint()
            if lost:
                self.notify(f"coordinator lost: {self.why_no_coordinator(now)}", severity="error", timeout=10, markup=False)
        if delta.run_changed or (delta.costs is not None):
            self.header_pane.show(run, delta.attention_count, delta.status_counts, self.costs, now)
        else:
            self.header_pane.tick(now)
        if delta.run_changed:
            self.resources_pane.show(run, delta.samples)
            self.costs_pane.show(delta.costs)
        self.agents_pane.show(run, delta.agents, delta.utilisation, delta.pool_utilisation, self.view.done_by_agent,
                             now=now)
        if delta.locks is not None:
            self.locks_pane.show(delta.locks, now)
        if delta.events:
            self.events_pane.add(delta.events)
        if delta.run_changed:
            self._update_summary()
            screen = self.screen
            if isinstance(screen, AttentionScreen):
                screen.show(self.view.attention_tasks())
            elif isinstance(screen, TaskDetailScreen) and any(t.task_id == screen.task_id for t in delta.tasks):
                screen.reload()

    def _update_summary(self, width: int | None = None) -> None:
        """The compact layout's one-line stand-in for the side panes. Parts give way whole,
        the machine's gauges first, so the line never ends cut (it ended in a stray "w:" at
        80 columns)."""
        run, costs = self.run_info, self.costs
        if run is None:
            return
        gauges = self.resources_pane
        sample = gauges.samples[-1] if gauges.samples else None
        live = sum(1 for a in self.agents_pane.agents.values() if a.role == "implementer" and a.state != "retired")
        spend = Text(f"${costs.spent_usd:.2f}/${costs.mission_budget_usd:.2f}")
        level = costs.alert_level(costs.fraction)
        if level is not None:
            spend.append(f" ▲{level * 100:.0f}%", style="bold")
        # (part, the order it gives way in: highest first)
        parts: list[tuple[Text, int]] = [(Text(f"pool {live} live/target {run.pool_target}"), 0)]
        if sample:
            parts.append((Text(f"cpu {sample.cpu_percent:.0f}% mem {sample.memory_percent:.0f}% "
                               f"disk {sample.disk_percent:.0f}%"), 3))
        parts += [(spend, 0), (Text(f"locks {len(self.locks_pane.cells)}"), 2), (Text("w: more"), 1)]
        room = (width or self.size.width) - 2  # the line's padding
        while len(parts) > 1 and sum(p.cell_len for p, _ in parts) + 3 * (len(parts) - 1) > room:
            drop = max(range(len(parts)), key=lambda i: (parts[i][1], i))
            if parts[drop][1] == 0:
                break
            del parts[drop]
        show_text(self.summary_line, Text(" · ").join(p for p, _ in parts))

    # -- helpers --------------------------------------------------------------------
    def notify(self, message: str, **kwargs: Any) -> None:
        # Keep what the operator was told (newest last): toasts vanish, tests and the
        # attention view can still read it.
        self.notices.append(message)
        del self.notices[:-50]
        super().notify(message, **kwargs)

    def selected_task_id(self) -> str | None:
        screen = self.screen
        if isinstance(screen, (TaskDetailScreen, AttentionScreen, DependencyScreen)):
            return screen.selected_task_id
        return self.tasks_pane.selected_task_id

    def coordinator_present(self, now: float | None = None) -> bool:
        """A coordinator will apply what is queued: ours is running, or the run's heartbeat is fresh."""
        if self.coordinator is not None and not self.coordinator_done:
            return True
        run = self.run_info
        if run is None:
            return False
        if coordinator_alive(run.heartbeat_at, self.clock() if now is None else now):
            return True
        # Planning beats from a task of its own, but a slow synchronous step of it can hold the
        # loop past the heartbeat's limit (before, planning wrote none: scale-200 showed
        # "planning: COORDINATOR LOST" for its whole first minute and pause was refused). A
        # coordinator planning on this machine is also seen alive by its process.
        return run.status == "planning" and planning_coordinator_alive(run.coordinator_pid, run.coordinator_host)

    def why_no_coordinator(self, now: float | None = None) -> str:
        run = self.run_info
        if run is None:
            return "the run is not read yet"
        now = self.clock() if now is None else now
        silent = f"no heartbeat for {human_duration(now - run.heartbeat_at)}" if run.heartbeat_at else "never started"
        if run.status in LIVE_RUN_STATUSES:
            return f"the run is {run.status} but its coordinator is gone ({silent}); `hybrid-tui resume {run.run_id}` drives it again"
        return f"the run is {run.status} and no coordinator drives it; `hybrid-tui resume {run.run_id}` to act on it"

    def can_send(self, label: str) -> bool:
        """A control would be applied: the console may write and a coordinator is there. Else
        says why (naming ``label``) and returns False."""
        if self.read_only:
            self.notify(f"{label}: not sent, this console is read-only", severity="warning", markup=False)
            return False
        if not self.coordinator_present():
            self.notify(f"{label}: not sent, {self.why_no_coordinator()}", severity="error", timeout=10, markup=False)
            return False
        return True

    def send(self, command: str, label: str, *, quiet: bool = False, **args: Any) -> int | None:
        """The one way the console changes anything: a row in the control table. Refused (None)
        when no coordinator would apply it: a queued command nobody applies is a lie."""
        if not self.can_send(label):
            return None
        control_id = self.store.enqueue_control(self.run_id, command, source="tui", **args)
        self.sent_controls[control_id] = label
        if not quiet:
            self.notify(f"{label}: sent", timeout=2, markup=False)
        return control_id

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in OPERATOR_ACTIONS and isinstance(self.screen, ModalScreen):
            return False
        if action in DASHBOARD_ACTIONS and len(self.screen_stack) > 1:
            return False
        if action in TASK_LIST_ACTIONS and hasattr(self, "body") and self.tasks_hidden():
            return False  # they would act on a list that is not on screen
        if action in ("pause_mission", "resume_mission"):
            paused = self.run_info is not None and self.run_info.status == "paused"
            if paused != (action == "resume_mission"):
                return False  # the other of the two p bindings is the one shown and run
        if self.read_only and action in CONTROL_ACTIONS:
            return None  # shown dimmed in the footer, and the key does nothing
        return True

    def _need_task(self) -> str | None:
        task_id = self.selected_task_id()
        if task_id is None:
            self.notify("no task selected", severity="warning")
        return task_id

    # -- operator actions -----------------------------------------------------------
    def action_pause_mission(self) -> None:
        self.action_toggle_pause()

    def action_resume_mission(self) -> None:
        self.action_toggle_pause()

    def action_toggle_pause(self) -> None:
        run = self.run_info
        if run is None:
            return
        if run.status not in LIVE_RUN_STATUSES:
            self.notify(f"mission is {run.status}; nothing to pause", severity="warning")
            return
        if run.status == "paused":
            self.send("resume", "resume")
        else:
            self.send("pause", "pause", reason="operator")

    def action_retry(self) -> None:
        task_id = self._need_task()
        if task_id:
            self.send("retry", f"retry {task_id}", task_id=task_id)

    def action_approve(self) -> None:
        task_id = self._need_task()
        if task_id:
            self.send("approve", f"approve {task_id}", task_id=task_id)

    def action_reject(self) -> None:
        task_id = self._need_task()
        if not task_id:
            return
        body = Text(f"{inert(task_id)} fails with failure type 'rejected' and waits in the attention view; "
                    "its dependents are blocked. Retrying it later runs it.")

        def confirmed(yes: bool | None) -> None:
            if yes:
                self.send("reject", f"reject {task_id}", task_id=task_id, reason="rejected in the console")

        self.push_screen(ConfirmScreen(f"Reject {task_id}?", body, yes="Reject", no="Keep"), confirmed)

    def action_cancel_dependents(self) -> None:
        task_id = self._need_task()
        if not task_id:
            return
        dependents = self.view.dependents(task_id, transitive=True)
        if not dependents:
            self.notify(f"{task_id} has no dependents", severity="warning", markup=False)
            return
        body = Text()
        body.append(f"These {len(dependents)} task(s) depend on {inert(task_id)} and will be cancelled:\n\n")
        for dep_id, status in dependents:
            body.append(f"  {inert(dep_id)}", style="bold")
            body.append(f"  ({inert(status)})\n")

        def confirmed(yes: bool | None) -> None:
            if yes:
                self.send("cancel_dependents", f"cancel dependents of {task_id}", task_id=task_id)

        self.push_screen(ConfirmScreen(f"Cancel the dependents of {task_id}?", body, yes="Cancel them", no="Keep"), confirmed)

    def action_rollback(self) -> None:
        task_id = self._need_task()
        if not task_id:
            return
        commit = self.view.integration_commit(task_id)
        if commit is None:
            self.notify(f"{task_id} has no integration commit to roll back", severity="warning", markup=False)
            return
        body = Text()
        body.append("Revert commit ")
        body.append(commit.sha[:12], style="bold")
        body.append(f" on {inert(self.run_info.mission_branch if self.run_info else 'the mission branch')}\n")
        subject = _commit_subject(self.run_info.repo_path if self.run_info else "", commit.sha)
        if subject:
            body.append(f"  {inert(subject)}\n")
        files = commit.files
        if files:
            body.append("files: " + ", ".join(inert(f) for f in files) + "\n")
        if commit.reverted_by:
            body.append(f"\nAlready reverted by {commit.reverted_by[:12]}.\n", style="bold")
        conflicts = self.view.rollback_conflicts(task_id)
        scope = [c.task_id for c in self.view.rollback_scope(task_id)] if conflicts else []
        if conflicts:
            body.append("\nLater tasks touched the same files, so it alone cannot be reverted:\n", style="bold")
            for other, shared in conflicts:
                body.append(f"  {inert(other)}: {', '.join(inert(s) for s in shared)}\n")
            body.append(f"\nA cascade reverts these {len(scope)} tasks together, newest first:\n", style="bold")
            for other in scope:
                body.append(f"  {inert(other)}\n")
        refused = self.view.last_control_result(task_id, "rollback")
        if refused:
            body.append(f"\nLast rollback refused: {inert(refused)}\n", style="bold")

        def confirmed(yes: bool | None) -> None:
            if yes and scope:
                self.send("rollback", f"cascade rollback of {task_id} ({len(scope)} tasks)", task_id=task_id,
                          cascade=True, scope=scope)
            elif yes:
                self.send("rollback", f"rollback {task_id}", task_id=task_id)

        yes = f"Roll back {len(scope)} tasks" if scope else "Roll back"
        self.push_screen(ConfirmScreen(f"Roll back {task_id}?", body, yes=yes, no="Keep"), confirmed)

    def _pool_base(self) -> int | None:
        run = self.run_info
        if run is None:
            return None
        return self.requested_pool if self.requested_pool is not None else run.pool_target

    def _scale_to(self, size: int) -> None:
        run = self.run_info
        if run is None:
            return
        size = max(run.pool_min, min(run.pool_max, size))
        if size == self._pool_base():
            self.notify(f"pool already at {size} (min {run.pool_min}, max {run.pool_max})", severity="warning")
            return
        if self.send("scale", f"scale pool to {size}", size=size) is not None:
            self.requested_pool = size

    def action_scale_up(self) -> None:
        base = self._pool_base()
        if base is not None:
            self._scale_to(base + 1)

    def action_scale_down(self) -> None:
        base = self._pool_base()
        if base is not None:
            self._scale_to(base - 1)

    def action_scale_exact(self) -> None:
        run = self.run_info
        if run is None:
            return

        def chosen(size: int | None) -> None:
            if size is not None:
                self._scale_to(size)

        self.push_screen(ScaleScreen(self._pool_base() or run.pool_target, run.pool_min, run.pool_max), chosen)

    def action_stop_mission(self) -> None:
        """Stop the coordinator (in-process: request_stop; attached: a stop control)."""
        if self.coordinator is not None and not self.coordinator_done:
            self.coordinator.request_stop()
            self.notify("stopping the coordinator…")
        else:
            self.send("stop", "stop")

    # -- views ----------------------------------------------------------------------
    DETAIL_SCREEN = "task-detail"

    def _build_detail_ahead(self) -> TaskDetailScreen:
        """Install the one detail screen and start it (compose, mount, style its widgets) while
        the app is idle, showing no task yet: the first Enter then only fills it in. Textual
        starts an installed screen only when it is pushed (``App._get_screen``); this is that
        same step, taken ahead."""
        screen = self._detail_screen
        if screen is None:
            screen = self._detail_screen = TaskDetailScreen(self.view, None)
            self.install_screen(screen, self.DETAIL_SCREEN)
            if not self._exit and not screen.is_running:
                self._register(self, screen)
        return screen

    def open_detail(self, task_id: str) -> None:
        """Show ``task_id``'s detail on the one installed detail screen: built once (ahead, after
        the first frame), so opening it mounts and styles no widgets and Escape removes none
        (the key budget, README Performance). A detail already in the stack (detail → tree →
        detail) gets a new one."""
        screen = self._detail_screen or self._build_detail_ahead()
        if screen in self.screen_stack:
            self.push_screen(TaskDetailScreen(self.view, task_id))
            return
        screen.show_task(task_id)
        self.push_screen(self.DETAIL_SCREEN)

    def action_detail(self) -> None:
        if isinstance(self.screen, TaskDetailScreen):
            return
        task_id = self._need_task()
        if task_id:
            self.open_detail(task_id)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "task-table":
            event.stop()
            self.open_detail(event.row_key.value)

    def action_toggle_mark(self) -> None:
        if self.screen is not self.screen_stack[0]:
            return
        task_id = self._need_task()
        if task_id:
            self.tasks_pane.toggle_mark(task_id)
            self.tasks_pane.table.action_cursor_down()  # htop/lazygit: space marks and moves on

    def action_clear_marks(self) -> None:
        self.tasks_pane.clear_marks()

    def bulk_retry_targets(self) -> tuple[list[str], str]:
        """The tasks R retries, and how they were chosen: the marked ones, else every failed
        task with the selected task's failure type (after a budget stop: all of them at once)."""
        rows = self.tasks_pane.rows
        marked = self.tasks_pane.marked_in_order()
        if marked:
            return marked, f"the {len(marked)} marked task(s)"
        task_id = self.selected_task_id()
        row = rows.get(task_id) if task_id else None
        if row is None or row.status != "failed":
            return [], ""
        kind = row.failure_type
        same = [t for t in sorted(rows, key=self.tasks_pane.order.__getitem__)
                if rows[t].status == "failed" and rows[t].failure_type == kind]
        return same, f"every failed task with failure {kind or 'unknown'} ({len(same)})"

    def action_retry_bulk(self) -> None:
        targets, how = self.bulk_retry_targets()
        if not targets:
            self.notify("mark tasks with space, or select a failed task to retry all failed like it",
                        severity="warning")
            return
        if not self.can_send(f"retry {len(targets)} task(s)"):
            return  # refused before asking: nobody would apply the answer
        rows = self.tasks_pane.rows
        # Marked tasks that cannot be retried are left out and named (R asked to retry done
        # tasks, then every one came back refused).
        left = [t for t in targets if rows[t].status not in DEAD_STATUSES]  # what a retry takes back
        targets = [t for t in targets if t not in left]
        if not targets:
            self.notify(f"none of the {len(left)} marked task(s) can be retried (only failed, blocked, cancelled or "
                        "rolled-back ones)", severity="warning", markup=False)
            return
        if left:
            how = f"{len(targets)} of the {len(targets) + len(left)} marked task(s)"
        body = Text()
        body.append(f"Retry {how}:\n\n")
        for task_id in targets[:30]:
            row = rows[task_id]
            body.append(f"  {inert(task_id)}", style="bold")
            body.append(f"  ({inert(row.status)}{', ' + inert(row.failure_type) if row.failure_type else ''})\n")
        if len(targets) > 30:
            body.append(f"  … and {len(targets) - 30} more\n")
        if left:
            body.append(f"\nLeft as they are ({len(left)}: not failed, blocked, cancelled or rolled back): "
                        + ", ".join(inert(t) for t in left[:10]) + (" …" if len(left) > 10 else "") + "\n")
        conflicts = [t for t in targets if rows[t].failure_type == "git_conflict"]
        if conflicts:
            body.append(f"\n{len(conflicts)} of them failed on a git conflict: a retry meets the same conflict and "
                        "spends money again unless the mission branch changed (see each task's detail).\n", style="bold")
        self.push_screen(ConfirmScreen(f"Retry {len(targets)} task(s)?", body, yes="Retry", no="Keep"),
                         self._send_each_when_confirmed("retry", targets))

    # What a cancel control stops: a task not started, blocked, or with an attempt before its
    # integration (the coordinator refuses an integrating one: roll it back once done).
    CANCELLABLE = QUEUED_STATUSES | {"blocked", "running", "validating"}

    def action_cancel_bulk(self) -> None:
        """k9s-style bulk cancel: the marked tasks, each its own durable ``cancel`` control
        (their queued dependents are blocked as after a failure, so retrying a cancelled task
        brings them back); with nothing marked, the selected task's dependents, as ``c``."""
        pane = self.tasks_pane
        rows = pane.rows
        marked = pane.marked_in_order()
        if not marked:
            self.action_cancel_dependents()
            return
        if not self.can_send(f"cancel {len(marked)} marked task(s)"):
            return  # refused before asking: nobody would apply the answer
        targets = [t for t in marked if rows[t].status in self.CANCELLABLE]
        left = [t for t in marked if t not in targets]
        if not targets:
            self.notify(f"none of the {len(marked)} marked task(s) can be cancelled (done, failed, cancelled "
                        "or integrating)", severity="warning", markup=False)
            return
        # What the coordinator stops downstream (as after a failure): queued ones are blocked,
        # in-flight ones cancelled; blocked, failed and finished ones stay as they are.
        dependents = [(t, status) for t, status in self.view.dependents_of(targets, transitive=True)
                      if status in QUEUED_STATUSES | IN_FLIGHT_STATUSES and t not in targets]
        running = [t for t in targets if rows[t].status in ("running", "validating")]
        body = Text()
        body.append(f"Cancel {len(targets)} marked task(s)")
        body.append(f", stopping {len(running)} running attempt(s)" if running else "")
        body.append(":\n\n")
        self._list_tasks(body, [(t, rows[t].status) for t in targets])
        if dependents:
            body.append(f"\nTheir {len(dependents)} unfinished dependent(s) stop too (queued ones blocked until you "
                        "retry the cancelled task, running ones cancelled):\n\n", style="bold")
            self._list_tasks(body, dependents)
        if left:
            body.append(f"\nLeft as they are ({len(left)}: done, failed, cancelled or integrating): "
                        + ", ".join(inert(t) for t in left[:10]) + (" …" if len(left) > 10 else "") + "\n")
        title = f"Cancel {len(targets)} task(s)" + (f" and stop {len(dependents)} dependent(s)?" if dependents else "?")
        self.push_screen(ConfirmScreen(title, body, yes="Cancel them", no="Keep"),
                         self._send_each_when_confirmed("cancel", targets))

    def _send_each_when_confirmed(self, command: str, targets: list[str]) -> Callable[[bool | None], None]:
        """A confirmation's callback: one durable ``command`` control per task (stopping at the
        first the console refuses to send), then the marks are cleared."""
        def confirmed(yes: bool | None) -> None:
            if not yes:
                return
            sent = 0
            for task_id in targets:
                if self.send(command, f"{command} {task_id}", quiet=True, task_id=task_id) is None:
                    break
                sent += 1
            if sent:
                self.notify(f"{command} sent for {sent} task(s)", timeout=3)
                self.tasks_pane.clear_marks()
        return confirmed

    @staticmethod
    def _list_tasks(body: Text, tasks: list[tuple[str, str]], limit: int = 30) -> None:
        for task_id, status in tasks[:limit]:
            body.append(f"  {inert(task_id)}", style="bold")
            body.append(f"  ({inert(status)})\n")
        if len(tasks) > limit:
            body.append(f"  … and {len(tasks) - limit} more\n")

    def action_set_budget(self) -> None:
        run = self.run_info
        if run is None:
            return

        def chosen(value: float | None) -> None:
            if value is not None:
                self.send("budget", f"mission budget ${value:.2f}", mission_usd=value)

        self.push_screen(BudgetScreen(self.costs.mission_budget_usd or run.mission_budget_usd, self.costs.spent_usd), chosen)

    def action_dependency_tree(self) -> None:
        if isinstance(self.screen, DependencyScreen):
            self.pop_screen()
            return
        task_id = self._need_task()
        if task_id:
            self.push_screen(DependencyScreen(self.view, task_id))

    def action_search(self) -> None:
        if self.screen is self.screen_stack[0]:
            if self.tasks_hidden():
                # The side panes had the whole body: the search box (and what the operator
                # typed, "w" included) went to the hidden task list. Bring the tasks back.
                self.action_toggle_side()
            self.tasks_pane.open_search()

    def action_attention(self) -> None:
        if isinstance(self.screen, AttentionScreen):
            self.pop_screen()
            return
        self.push_screen(AttentionScreen(self.view.attention_tasks()))

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.KEY_HELP))

    def action_sort(self) -> None:
        self.tasks_pane.cycle_sort()

    def action_reverse_sort(self) -> None:
        self.tasks_pane.reverse_sort()

    def action_filter(self) -> None:
        self.tasks_pane.cycle_filter()

    def action_filter_back(self) -> None:
        self.tasks_pane.cycle_filter(-1)

    def action_toggle_side(self) -> None:
        if self.screen is not self.screen_stack[0]:
            return
        self.body.toggle_class("-side-open")
        if self.compact and self.body.has_class("-side-open"):
            self.side.focus()
        else:
            self.tasks_pane.table.focus()
        self.refresh_bindings()  # the task list's own keys come and go with it

    def tasks_hidden(self) -> bool:
        """The side panes have the whole body (compact layout after ``w``)."""
        return self.compact and self.body.has_class("-side-open")

    def action_cycle_theme(self) -> None:
        names = list(self._hybrid_themes)
        current = self.theme if self.theme in names else names[0]
        self.theme = names[(names.index(current) + 1) % len(names)]
        self.notify(f"theme: {self.theme}", timeout=2)

    def watch_theme(self, theme: str) -> None:
        # Cells carry theme colours in their Text styles: re-style them.
        if not hasattr(self, "tasks_pane"):
            return
        for pane in (self.tasks_pane, self.agents_pane, self.header_pane, self.resources_pane, self.costs_pane):
            pane.repaint()

    # -- quitting -------------------------------------------------------------------
    async def action_quit(self) -> None:
        """Textual's quit (the palette's "Quit", ctrl+q): the same stop path as q, never an
        exit that leaves the run "running" with no coordinator. A dialog open is closed first
        (a quit question already asked stays)."""
        if isinstance(self.screen, ConfirmScreen) and self._asking_quit:
            return
        while isinstance(self.screen, ModalScreen) and len(self.screen_stack) > 1:
            self.pop_screen()
        self.action_quit_console()

    def action_quit_console(self) -> None:
        if isinstance(self.screen, ModalScreen):
            return
        # Decide on the run as the store has it now, not as of the last poll: a run that has
        # just finished must not ask "stop the mission?" of an operator who saw it finish.
        run = self.run_info = self.view.run_info()
        in_process = self.coordinator is not None and not self.coordinator_done
        if not in_process:
            self.exit(self.coordinator_exit if self.coordinator_exit is not None else 0)
            return
        if self.quitting:  # second q while stopping: do not wait any longer
            self.workers.cancel_group(self, "coordinator")
            self.exit(EXIT_STOPPED)
            return
        if run is not None and run.status not in LIVE_RUN_STATUSES:
            self._begin_stop()
            return
        body = Text(
            "The mission is still running. Quitting stops the coordinator gracefully: running "
            "attempts are interrupted and the run stays resumable (attach or run it again).\n"
        )

        def confirmed(yes: bool | None) -> None:
            self._asking_quit = False
            if yes:
                self._begin_stop()

        self._asking_quit = True
        self.push_screen(ConfirmScreen("Quit and stop the mission?", body, yes="Quit", no="Stay"), confirmed)

    def _begin_stop(self) -> None:
        self.quitting = True
        self.coordinator.request_stop()
        self.notify("stopping the coordinator… (q again to quit now)")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if worker.group != "coordinator" or not worker.is_finished:
            return
        self.coordinator_done = True
        if event.state == WorkerState.SUCCESS:
            self.coordinator_exit = int(worker.result or 0)
            self.notify(f"coordinator finished (exit {self.coordinator_exit})", timeout=5)
        elif event.state == WorkerState.ERROR:
            self.coordinator_exit = 1
            self.notify(f"coordinator crashed: {worker.error}", severity="error", timeout=30, markup=False)
        else:
            self.coordinator_exit = EXIT_STOPPED
        self.poll_now()
        if self.quitting:
            self.exit(self.coordinator_exit)

    # -- command palette ------------------------------------------------------------
    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for command in self._console_commands():
            if self.read_only and command.callback.__name__.removeprefix("action_") in CONTROL_ACTIONS:
                continue
            yield command

    def _console_commands(self) -> Iterable[SystemCommand]:
        paused = self.run_info is not None and self.run_info.status == "paused"
        yield SystemCommand("Resume mission" if paused else "Pause mission", "p: pause / resume dispatching", self.action_toggle_pause)
        yield SystemCommand("Retry selected task", "r: queue the selected task again", self.action_retry)
        yield SystemCommand("Approve selected task", "A: let a task awaiting approval run", self.action_approve)
        yield SystemCommand("Reject selected task", "X: fail a task awaiting approval (asks)", self.action_reject)
        yield SystemCommand("Cancel dependents", "c: cancel every task depending on the selected one", self.action_cancel_dependents)
        yield SystemCommand("Roll back selected task", "b: git revert its integration commit", self.action_rollback)
        yield SystemCommand("Task detail", "enter: spec, attempts, logs, diff", self.action_detail)
        yield SystemCommand("Needs attention", "a: tasks that need a human", self.action_attention)
        yield SystemCommand("Grow pool", "+: one more agent", self.action_scale_up)
        yield SystemCommand("Shrink pool", "-: one agent less", self.action_scale_down)
        yield SystemCommand("Set pool size", "=: type an exact pool size", self.action_scale_exact)
        yield SystemCommand("Next theme", f"t: {', '.join(self._hybrid_themes)}", self.action_cycle_theme)
        yield SystemCommand("Sort tasks", "s: next sort column", self.action_sort)
        yield SystemCommand("Filter tasks", "f: next status filter", self.action_filter)
        yield SystemCommand("Search tasks", "/: by id or title", self.action_search)
        yield SystemCommand("Mark task", "space: mark / unmark the selected task", self.action_toggle_mark)
        yield SystemCommand("Retry marked or all failed like this", "R: bulk retry (asks first)", self.action_retry_bulk)
        yield SystemCommand("Cancel marked tasks", "C: bulk cancel, or the selected task's dependents (asks first)",
                            self.action_cancel_bulk)
        yield SystemCommand("Set mission budget", "$: raise or lower the budget", self.action_set_budget)
        yield SystemCommand("Dependency tree", "d: ancestors and dependents of the selected task", self.action_dependency_tree)
        yield SystemCommand("Toggle side panes", "w: agents, resources, cost, locks (compact layout)", self.action_toggle_side)
        yield SystemCommand("Stop mission", "stop the coordinator; the run stays resumable", self.action_stop_mission)
        yield SystemCommand("Keys", "?: every key", self.action_help)
        yield SystemCommand("Quit console", "q: quit (asks while the mission runs)", self.action_quit_console)


def planning_coordinator_alive(pid: int | None, host: str) -> bool:
    """The coordinator that recorded itself on the run is a live process on this machine
    (one on another machine cannot be seen: its heartbeat is all there is)."""
    if not pid or host != socket.gethostname():
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def dumb_terminal(environ: dict[str, str] | None = None) -> bool:
    """TERM says the terminal takes no colour (rich's test: ``dumb`` or ``unknown``)."""
    term = (os.environ if environ is None else environ).get("TERM", "")
    return term.strip().lower() in ("dumb", "unknown")


def _commit_subject(repo_path: str, sha: str) -> str:
    if not repo_path:
        return ""
    try:
        import git  # GitPython; imported late so the dashboard does not pay for it

        return git.Repo(repo_path).git.log("-1", "--format=%s", sha)
    except Exception:
        return ""


def run_console(store: Store, run_id: str, *, coordinator: object | None = None, theme: str = "dark",
                read_only: bool = False) -> int:
    """Open the console on ``run_id`` (running ``coordinator`` in-process when given).

    Returns the exit code: the coordinator's when it ran here, else 0.
    """
    queries.run_record(run_id)  # an unknown run is a StoreError before the screen is taken over
    app = HybridApp(store, run_id, coordinator=coordinator, theme=theme, read_only=read_only)
    result = app.run()
    if result is None:
        result = app.coordinator_exit if app.coordinator_exit is not None else 0
    return int(result)
