"""Tables that fit their pane: when the columns are wider than the pane, the least needed go
first, in an order each table chooses (never its PnL), so no row hides under a horizontal
scrollbar. Cells are ``rich.text.Text`` (never markup), one leading space each (the tables
have no cell padding)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.text import Text
from textual.widgets import DataTable


@dataclass(frozen=True)
class Column:
    title: str
    keep: int = 50             # drop order: the lowest goes first; KEEP is never dropped
    right: bool = False        # numbers: right-aligned
    shrink: int = 0            # text that may be cut (with an ellipsis) to this many cells before it is dropped


KEEP = 100


def cell(value: object, right: bool = False) -> Text:
    """A cell as text, with its leading space (right-aligned for numbers)."""
    text = value.copy() if isinstance(value, Text) else Text(str(value))
    return Text.assemble(" ", text, justify="right") if right else Text(" ", end="") + text


def fit(columns: Sequence[Column], rows: Sequence[Sequence[Text]], width: int) -> tuple[list[int], list[int]]:
    """The indices of the columns to show in ``width`` cells, and each column's width: every
    column if they fit; else a shrinkable column is cut (down to its ``shrink``), then the lowest
    ``keep`` ones go, one at a time, until they fit (KEEP columns always stay)."""
    widths = [max([len(c.title) + 1] + [len(row[i]) for row in rows]) for i, c in enumerate(columns)]
    shown = list(range(len(columns)))
    for i in sorted(range(len(columns)), key=lambda i: columns[i].keep):
        over = sum(widths[j] for j in shown) - width
        if over <= 0 or columns[i].keep >= KEEP:
            break
        if columns[i].shrink and widths[i] - over >= columns[i].shrink:
            widths[i] -= over
            break
        shown.remove(i)
    return shown, widths


def fill(table: DataTable, columns: Sequence[Column], rows: Sequence[tuple[str, Sequence[object]]],
         width: int) -> None:
    """Show ``rows`` (key, cells) in ``table`` with the columns that fit ``width``; the cursor stays
    on its row's key when that row is still there."""
    cells = [[cell(v, c.right) for v, c in zip(values, columns)] for _, values in rows]
    shown, widths = fit(columns, cells, width)
    for i in shown:
        if columns[i].shrink:
            for row in cells:
                row[i].truncate(widths[i], overflow="ellipsis")
    titles = [columns[i].title for i in shown]
    selected = _cursor_key(table)
    if [str(c.label).strip() for c in table.columns.values()] != titles:
        table.clear(columns=True)
        table.add_columns(*(cell(columns[i].title, columns[i].right) for i in shown))
    else:
        table.clear()
    for (key, _), row in zip(rows, cells):
        table.add_row(*(row[i] for i in shown), key=key)
    if table.row_count:
        keys = [key for key, _ in rows]
        table.move_cursor(row=keys.index(selected) if selected in keys else min(table.cursor_row, table.row_count - 1))


def _cursor_key(table: DataTable) -> str | None:
    if not table.row_count:
        return None
    try:
        return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)
    except Exception:
        return None


def content_width(table: DataTable, fallback: int) -> int:
    """Cells of room inside the table's border, less a vertical scrollbar."""
    width = table.size.width or fallback
    return max(10, width - 3)
