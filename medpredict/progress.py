"""Rich progress bars for long work, silenced with ``quiet=True`` (scripts, tests).

Work deep inside a stage (a network's epochs, a feature-extraction pass) reports what
it is doing with :func:`report_detail`; the innermost open :class:`StudyProgress` shows
it after the stage's count, and without one (a script, a cluster worker) nothing is
shown.
"""

from __future__ import annotations

import time
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

_OPEN: list[StudyProgress] = []


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
            TextColumn("{task.fields[detail]}"),
            console=console or Console(stderr=True),
            disable=quiet,
            transient=False,
        )
        self._current: TaskID | None = None

    def __enter__(self) -> StudyProgress:
        self._progress.__enter__()
        _OPEN.append(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _OPEN.remove(self)
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
        self._current = self._progress.add_task(description, total=total, unit=unit,
                                                detail="")
        return self._current

    def advance(self, task: TaskID, steps: int = 1) -> None:
        """Count ``steps`` more done in stage ``task``."""
        self._progress.advance(task, steps)

    def update(self, task: TaskID, completed: float, description: str) -> None:
        """Set how much of stage ``task`` is done and what it is doing now."""
        self._progress.update(task, completed=completed, description=description)

    def detail(self, text: str) -> None:
        """Show what the current stage is doing now (e.g. "epoch 3/30"), after its time."""
        if self._current is not None:
            self._progress.update(self._current, detail=text)


def report_detail(text: str) -> None:
    """Show ``text`` on the current stage of the innermost open :class:`StudyProgress`.

    Examples
    --------
    >>> report_detail("epoch 1/5")  # no progress display open: nothing happens
    >>> with StudyProgress(quiet=True) as progress:
    ...     task = progress.stage("fitting", total=1)
    ...     report_detail("epoch 1/5, about 4 s left")
    ...     progress._progress.tasks[task].fields["detail"]
    'epoch 1/5, about 4 s left'
    """
    if _OPEN:
        _OPEN[-1].detail(text)


def remaining(started: float, done: int, total: int) -> str:
    """Words for the time left when ``done`` of ``total`` equal steps took since ``started``
    (a ``time.perf_counter()`` value).

    Examples
    --------
    >>> import time
    >>> remaining(time.perf_counter() - 30, 3, 10)
    'about 70 s left'
    """
    elapsed = time.perf_counter() - started
    left = elapsed / max(done, 1) * max(total - done, 0)
    return f"about {left:.0f} s left" if left < 120 else f"about {left / 60:.0f} min left"

