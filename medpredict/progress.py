"""Rich progress bars for long work, silenced with ``quiet=True`` (scripts, tests)."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)


class StudyProgress:
    """One line per stage; stages with a known size show a bar.

    Examples
    --------
    >>> with StudyProgress(quiet=True) as progress:
    ...     task = progress.stage("folds", total=2)
    ...     progress.advance(task)
    ...     timed = progress.stage("searching", total=60, unit="s of the budget")
    ...     progress.update(timed, 12.5, "trial 3: lightgbm fold 2/5")
    """

    def __init__(self, quiet: bool = False, console: Console | None = None) -> None:
        self.quiet = quiet
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[unit]}"),
            TimeElapsedColumn(),
            console=console or Console(stderr=True),
            disable=quiet,
            transient=False,
        )
        self._current: TaskID | None = None

    def __enter__(self) -> StudyProgress:
        self._progress.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._finish_current()
        self._progress.__exit__(exc_type, exc, tb)

    def _finish_current(self) -> None:
        if self._current is not None:
            task = self._progress.tasks[self._current]
            total = task.total if task.total is not None else 1
            self._progress.update(self._current, total=total, completed=total)

    def stage(self, description: str, total: float | None, unit: str = "") -> TaskID:
        """Start a new stage (completing the previous one); ``unit`` follows its count."""
        self._finish_current()
        self._current = self._progress.add_task(description, total=total, unit=unit)
        return self._current

    def advance(self, task: TaskID, steps: int = 1) -> None:
        """Count ``steps`` more done in stage ``task``."""
        self._progress.advance(task, steps)

    def update(self, task: TaskID, completed: float, description: str) -> None:
        """Set how much of stage ``task`` is done and what it is doing now."""
        self._progress.update(task, completed=completed, description=description)
