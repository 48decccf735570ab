"""Dependency tree screen (room: tui): the selected task's ancestors (what it waits on) and
its dependents (what waits on it), each as a tree with every task's state."""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from rich.tree import Tree
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Static

from hybrid_tui.tui.data import inert
from hybrid_tui.tui.fast_table import StableFooter
from hybrid_tui.tui.panes.style import status_text
from hybrid_tui.tui.screens.one_task import OneTaskScreen

MAX_NODES = 400  # a 10,000-task DAG can fan out: the tree says how many it left out


class DependencyScreen(OneTaskScreen):
    DEFAULT_CSS = """
    DependencyScreen #tree-title { height: 1; background: $panel; padding: 0 1; text-style: bold; }
    DependencyScreen VerticalScroll { height: 1fr; padding: 0 1; }
    """
    BINDINGS = [
        Binding("escape,q,d", "app.pop_screen", "Back"),
        Binding("enter", "open_detail", "Detail"),
    ]

    def compose(self) -> ComposeResult:
        yield Static(Text(f"Dependencies of {inert(self.task_id)}"), id="tree-title")
        with VerticalScroll():
            yield Static("", id="tree-ancestors")
            yield Static("", id="tree-dependents")
        yield StableFooter(compact=True)

    def on_mount(self) -> None:
        self.reload()
        self.query_one(VerticalScroll).focus()

    def reload(self) -> None:
        view = self.view
        own = view.task(self.task_id)
        status = own.status if own else "?"
        self.query_one("#tree-ancestors", Static).update(
            self._tree("waits on (ancestors)", status, lambda t: view.dependencies(t)))
        self.query_one("#tree-dependents", Static).update(
            self._tree("waited on by (dependents)", status, lambda t: view.dependents(t)))

    def _label(self, task_id: str, status: str) -> Text:
        text = Text(inert(task_id), style="bold")
        text.append("  ")
        text.append_text(status_text(self.app, status))
        return text

    def _tree(self, title: str, status: str, edges: Callable[[str], list[tuple[str, str]]]) -> Tree:
        root = Tree(Text(title, style="underline"))
        top = root.add(self._label(self.task_id, status))
        budget = [MAX_NODES]
        self._grow(top, self.task_id, edges, {self.task_id}, budget)
        if budget[0] <= 0:
            root.add(Text(f"(more than {MAX_NODES} tasks: the rest left out)", style="dim"))
        return root

    def _grow(self, node: Tree, task_id: str, edges, path: set[str], budget: list[int]) -> None:
        children = edges(task_id)
        if not children and node is not None and len(path) == 1:
            node.add(Text("none", style="dim"))
        for child, status in children:
            if budget[0] <= 0:
                return
            budget[0] -= 1
            branch = node.add(self._label(child, status))
            if child not in path:  # a DAG has no cycle; the guard keeps a bad store from looping
                self._grow(branch, child, edges, path | {child}, budget)

    def action_open_detail(self) -> None:
        self.app.open_detail(self.task_id)
