"""The contract between ``tui/fast_table.py`` and the pinned Textual version: the batched
update path writes exactly what DataTable's public ``update_cell`` writes, kept cells render
exactly what DataTable renders, visible rows are the ones DataTable itself reports, the
stable footer shows the footer's keys, and the private names they rely on exist. A Textual
upgrade that breaks any of this fails here, not in a console on someone's screen."""

from __future__ import annotations

import pytest
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer
from textual.widgets._footer import FooterKey
from textual.widgets.data_table import CellDoesNotExist, ColumnKey, RowKey

from hybrid_tui.tui.fast_table import StableFooter, TaskTable


@pytest.fixture
def anyio_backend():
    return "asyncio"


class _Tables(App):
    def compose(self) -> ComposeResult:
        yield TaskTable(id="fast")
        yield DataTable(id="public")


def _fill(table: DataTable) -> tuple[list[RowKey], list[ColumnKey]]:
    columns = [table.add_column(name, key=name) for name in ("id", "status")]
    rows = [table.add_row(Text(f"t{i}"), Text("ready"), key=f"t{i}") for i in range(30)]
    return rows, columns


def test_the_private_datatable_names_the_fast_path_uses_exist():
    table = DataTable()
    for name in ("_row_locations", "_data", "_update_count"):
        assert hasattr(table, name), f"Textual's DataTable no longer has {name}: update tui/fast_table.py"


@pytest.mark.anyio
async def test_batched_updates_equal_the_public_update_cell():
    app = _Tables()
    async with app.run_test(size=(60, 20)) as pilot:
        fast, public = app.query_one("#fast", TaskTable), app.query_one("#public", DataTable)
        fast_rows, fast_columns = _fill(fast)
        public_rows, public_columns = _fill(public)
        await pilot.pause()
        changes = [(3, 1, "running"), (7, 1, "done"), (3, 0, "t3!"), (29, 1, "failed")]
        before = fast._update_count
        fast.update_cells((fast_rows[r], fast_columns[c], Text(v)) for r, c, v in changes)
        for r, c, v in changes:
            public.update_cell(public_rows[r], public_columns[c], Text(v))
        assert fast._update_count == before + 1  # one refresh for the whole batch
        for index in range(30):
            assert [str(cell) for cell in fast.get_row_at(index)] == [str(cell) for cell in public.get_row_at(index)]
        with pytest.raises(CellDoesNotExist):
            fast.update_cells([(RowKey("missing"), fast_columns[0], Text("x"))])


@pytest.mark.anyio
async def test_visible_row_keys_are_the_rows_on_screen():
    app = _Tables()
    async with app.run_test(size=(60, 20)) as pilot:
        fast = app.query_one("#fast", TaskTable)
        _fill(fast)
        await pilot.pause()
        keys = fast.visible_row_keys()
        assert keys[0] == "t0" and 0 < len(keys) <= fast.size.height
        fast.scroll_to(y=5, animate=False)
        await pilot.pause()
        assert fast.visible_row_keys()[0] == "t5"
        assert fast.visible_row_keys(margin=2)[0] == "t3"


def test_the_private_names_the_kept_cells_and_the_footer_use_exist():
    table = DataTable()
    for name in ("_render_cell", "_column_locations", "_row_locations", "_data", "_show_hover_cursor",
                 "_pseudo_class_state", "_clear_caches", "notify_style_update"):
        assert hasattr(table, name), f"Textual's DataTable no longer has {name}: update tui/fast_table.py"
    for name in ("_bindings_ready", "bindings_changed", "show_command_palette"):
        assert hasattr(Footer, name), f"Textual's Footer no longer has {name}: update tui/fast_table.py"


def _lines(table: DataTable) -> list[list]:
    return [list(table.render_line(y)) for y in range(table.size.height)]


@pytest.mark.anyio
async def test_kept_cells_render_what_datatable_renders_and_only_changed_cells_again():
    app = _Tables()
    async with app.run_test(size=(60, 40)) as pilot:
        fast, public = app.query_one("#fast", TaskTable), app.query_one("#public", DataTable)
        fast_rows, fast_columns = _fill(fast)
        public_rows, public_columns = _fill(public)
        app.set_focus(None)  # the same pseudo-classes on both
        await pilot.pause()
        assert _lines(fast) == _lines(public)  # segments, styles and the row/column meta a click reads
        first = fast.cells_rendered
        assert first > 0
        for round_no, (row, value) in enumerate([(3, "running"), (5, "done"), (3, "failed")]):
            fast.update_cells([(fast_rows[row], fast_columns[1], Text(value))])
            public.update_cell(public_rows[row], public_columns[1], Text(value))
            before = fast.cells_rendered
            await pilot.pause()
            assert _lines(fast) == _lines(public), round_no
            assert fast.cells_rendered - before == 1  # the changed cell only (DataTable: every cell)
        fast.move_cursor(row=4)
        public.move_cursor(row=4)
        await pilot.pause()
        assert _lines(fast) == _lines(public)  # the cursor row restyled (kept per cursor state)
        app.theme = "textual-light"  # a style change renders everything again
        await pilot.pause()
        assert _lines(fast) == _lines(public)


class _Footers(App):
    BINDINGS = [Binding("p", "noop", "Pause"), Binding("r", "noop", "Retry"), Binding("x", "noop", "Hidden", show=False)]

    def compose(self) -> ComposeResult:
        yield StableFooter(id="stable")
        yield Footer(id="public")

    def action_noop(self) -> None:
        pass


@pytest.mark.anyio
async def test_the_stable_footer_shows_the_keys_the_footer_shows():
    app = _Footers()
    async with app.run_test(size=(80, 10)) as pilot:
        await pilot.pause()
        await pilot.pause()

        def keys(footer_id: str) -> list[tuple[str, str]]:
            return [(k.key, k.description) for k in app.query_one(f"#{footer_id}").query(FooterKey)]

        assert keys("stable") == keys("public") and ("p", "Pause") in keys("stable")
        assert ("x", "Hidden") not in keys("stable")


@pytest.mark.anyio
async def test_a_repaint_computes_the_tables_rich_styles_once_not_per_line(monkeypatch):
    """DataTable asked for its Rich style on every line and its component styles on every
    row, each a walk up the ancestors' styles: a tick that changed 30 rows walked 60 times."""
    from textual.dom import DOMNode

    app = _Tables()
    async with app.run_test(size=(60, 40)) as pilot:
        fast, public = app.query_one("#fast", TaskTable), app.query_one("#public", DataTable)
        fast_rows, fast_columns = _fill(fast)
        public_rows, public_columns = _fill(public)
        app.set_focus(None)
        await pilot.pause()
        walks: list[object] = []
        rich_style = DOMNode.rich_style

        def counted(node):
            walks.append(node)
            return rich_style.fget(node)

        monkeypatch.setattr(DOMNode, "rich_style", property(counted))
        fast.update_cells([(row, fast_columns[1], Text("running")) for row in fast_rows])
        cells_before = fast.cells_rendered
        await pilot.pause()
        assert fast.cells_rendered - cells_before >= 30  # every row on screen was rendered again
        # Once for the table, once per component (header, even row style): not per line or row.
        assert len(walks) <= 4, len(walks)
        monkeypatch.undo()
        for row in public_rows:
            public.update_cell(row, public_columns[1], Text("running"))
        await pilot.pause()
        assert _lines(fast) == _lines(public)


@pytest.mark.anyio
async def test_rows_order_and_offsets_are_kept_across_cell_updates_and_follow_row_changes():
    """A cell update keeps the rows' order and line offsets (DataTable rebuilt both over every
    row); adding, removing and sorting rows still moves them as DataTable does."""
    app = _Tables()
    async with app.run_test(size=(60, 40)) as pilot:
        fast, public = app.query_one("#fast", TaskTable), app.query_one("#public", DataTable)
        fast_rows, fast_columns = _fill(fast)
        public_rows, public_columns = _fill(public)
        app.set_focus(None)
        await pilot.pause()
        order, offsets = fast.ordered_rows, fast._y_offsets
        fast.update_cells([(fast_rows[2], fast_columns[1], Text("running"))])
        public.update_cell(public_rows[2], public_columns[1], Text("running"))
        await pilot.pause()
        assert fast.ordered_rows is order and fast._y_offsets is offsets  # nothing rebuilt
        for table, rows in ((fast, fast_rows), (public, public_rows)):
            table.remove_row(rows[0])
            table.add_row(Text("t99"), Text("ready"), key="t99")
            table.sort("id", key=lambda cell: str(cell))
        await pilot.pause()
        assert [r.key.value for r in fast.ordered_rows] == [r.key.value for r in public.ordered_rows]
        assert fast._y_offsets == public._y_offsets
        assert _lines(fast) == _lines(public)
        fast.clear()
        public.clear()
        await pilot.pause()
        assert fast.ordered_rows == [] and fast._y_offsets == []
        with pytest.raises(ValueError):
            fast.add_row(Text("auto"), height=None)
