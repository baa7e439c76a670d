"""The one rich progress bar (on stderr), for training, attribution and data writing alike."""

from __future__ import annotations

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


def progress_bar(enabled: bool = True, info: bool = False) -> Progress:
    """A bar per task: description, bar, done/total, elapsed, remaining; `info` adds a free-text column
    (task field `info`, e.g. the running loss)."""
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn()]
    if info:
        columns.append(TextColumn("{task.fields[info]}"))
    return Progress(*columns, TimeElapsedColumn(), TimeRemainingColumn(), disable=not enabled, transient=False)
