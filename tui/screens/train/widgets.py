"""The Train screen's runs table: every training run, the shown one marked ▶ and an overlaid one •."""

from __future__ import annotations

from typing import Any

from textual.widgets import DataTable
from textual.widgets.data_table import RowDoesNotExist

from tui.screens.train.text import duration, row_status, started_text, steps_text

COLUMNS = ("", "run", "status", "steps", "metric", "time", "started")


class RunsTable(DataTable[str]):
    def __init__(self, *, id: str) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False)
        self.shown: list[tuple[str, ...]] = []

    def on_mount(self) -> None:
        self.add_columns(*COLUMNS)

    def show(self, rows: list[dict[str, Any]], selected: int | None, overlay: int | None) -> None:
        """Redraw when a cell changed; the cursor stays on its run (no highlight events: nothing moved for the
        user)."""
        cells = [self._cells(r, selected, overlay) for r in rows]
        if cells == self.shown:
            return
        keep = self.cursor_id()
        with self.prevent(DataTable.RowHighlighted):
            self.clear()
            for r, row in zip(rows, cells, strict=True):
                self.add_row(*row, key=str(r["id"]))
            self.shown = cells
            self.move_to(keep if keep is not None else selected)

    @staticmethod
    def _cells(r: dict[str, Any], selected: int | None, overlay: int | None) -> tuple[str, ...]:
        mark = "▶" if r["id"] == selected else ("•" if r["id"] == overlay else "")
        parent = f"←{r['parent_id']}" if r["parent_id"] else ""
        return (
            mark,
            f"{r['id']}{parent}",
            row_status(r),
            steps_text(r),
            r["metric"],
            duration(r["seconds"]) if r["seconds"] is not None else "–",
            started_text(r["started"]),
        )

    def move_to(self, run_id: int | None) -> None:
        if run_id is None or not self.row_count:
            return
        try:
            self.move_cursor(row=self.get_row_index(str(run_id)))
        except RowDoesNotExist:  # the run is gone from the list: the cursor stays where it is
            return

    def cursor_id(self) -> int | None:
        if not self.row_count:
            return None
        key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        return int(key) if key is not None else None
