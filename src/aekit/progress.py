"""One progress rule for every command: a live bar on a terminal, plain lines otherwise.

On a terminal, :func:`track` draws a tqdm bar that vanishes when the work is done. When the
output goes to a file or a pipe (a log, CI, ``nohup``), it prints one line per 10% of the work
instead, never a ``\\r``-redrawn bar. :func:`status` says what the next seconds are for
("writing report.html"), so that no command sits silent after its last line.

Progress goes to stderr, so that stdout holds only results (the epoch lines of ``aekit train``
are results: they stay on stdout).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TextIO, TypeVar

T = TypeVar("T")

STEPS = 10  # lines per piece of work when the output is not a terminal (one per 10%)


def is_live(stream: TextIO | None = None) -> bool:
    """True when ``stream`` (stderr by default) is a terminal that can redraw a bar in place."""
    stream = stream if stream is not None else sys.stderr
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or not a real stream
        return False


class Milestones:
    """The points at which a non-terminal prints: each 10% of ``total`` units of work.

    >>> m = Milestones(20); [i for i in range(1, 21) if m.passed(i)]
    [2, 4, 6, 8, 10, 12, 14, 16, 18, 20]
    """

    def __init__(self, total: int, steps: int = STEPS) -> None:
        self.total = max(1, int(total))
        self.steps = steps
        self.next = 1  # the next milestone, in tenths

    def passed(self, done: int) -> bool:
        """True once for each milestone that ``done`` units reach (several at once count once)."""
        hit = False
        while self.next <= self.steps and done * self.steps >= self.next * self.total:
            self.next += 1
            hit = True
        return hit

    @property
    def percent(self) -> int:
        return round(100 * (self.next - 1) / self.steps)


def _line(label: str, percent: int, done: int, total: int, unit: str, start: float) -> str:
    units = unit + ("es" if unit.endswith(("s", "x", "ch", "sh")) else "s")
    return f"{label}: {percent:3d}% ({done}/{total} {units}, {time.perf_counter() - start:.1f} s)"


def track(
    items: Iterable[T],
    label: str,
    *,
    total: int | None = None,
    unit: str = "batch",
    enabled: bool = True,
    stream: TextIO | None = None,
) -> Iterator[T]:
    """Iterate over ``items`` showing progress by the rule above.

    Args:
        items: The work, one unit per item.
        label: What is being done, e.g. ``"reconstructing"``.
        total: Units in all (``len(items)`` when it has one); without it, no lines off a terminal.
        unit: The unit's name in the lines, e.g. ``batch``.
        enabled: False shows nothing (``--quiet``).
        stream: Where to write (stderr by default).
    """
    stream = stream if stream is not None else sys.stderr
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    if not enabled:
        yield from items
        return
    if is_live(stream):
        from tqdm.auto import tqdm

        yield from tqdm(
            items, desc=label, total=total, unit=unit, leave=False, file=stream, dynamic_ncols=True
        )
        return
    if not total:
        yield from items
        return
    milestones, start = Milestones(total), time.perf_counter()
    for done, item in enumerate(items, 1):
        yield item
        if milestones.passed(done):
            print(_line(label, milestones.percent, done, total, unit, start), file=stream, flush=True)


def status(message: str, *, enabled: bool = True, stream: TextIO | None = None) -> None:
    """One line saying what the coming seconds are for, e.g. ``status("writing report.html")``."""
    if enabled:
        print(f"{message} ...", file=stream if stream is not None else sys.stderr, flush=True)


def live_bar(total: int, label: str, *, stream: TextIO | None = None, **kwargs: Any):
    """A tqdm bar for callers that update it by hand (the trainer's callback); only on a terminal."""
    from tqdm.auto import tqdm

    stream = stream if stream is not None else sys.stderr
    return tqdm(total=total, desc=label, leave=False, file=stream, dynamic_ncols=True, **kwargs)
