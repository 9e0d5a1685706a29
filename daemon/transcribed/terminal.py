"""`transcribed transcribe` on a terminal: a progress bar per file (tqdm), the log lines above it.

Only when stdout is a terminal: piped into a file or `jq`, stdout stays pure JSON lines.
"""

from __future__ import annotations

import contextlib
import io
import shutil
from collections.abc import Iterator
from typing import TextIO, cast

from tqdm import tqdm

#: The bar: "talk.mp3:  42%|████▏     | 00:12<00:16".
BAR_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}"


class LinesAboveBars(io.TextIOBase):
    """The log's stream while bars are drawn: each complete line is printed through tqdm, above
    the bar, instead of through it."""

    def __init__(self, real: TextIO) -> None:
        self.real = real
        self._partial = ""

    def write(self, text: str) -> int:
        self._partial += text
        *lines, self._partial = self._partial.split("\n")
        for line in lines:
            tqdm.write(line, file=self.real)
        return len(text)

    def flush(self) -> None:
        self.real.flush()

    def isatty(self) -> bool:
        return True


def log_stream_above_bars(real: TextIO) -> TextIO:
    """The stream `logs.configure` writes to while bars are drawn (it uses write and flush only)."""
    return cast("TextIO", LinesAboveBars(real))


class FileBar:
    """One file's bar, 0 to 100 %, moved by the engine's figures."""

    def __init__(self, name: str, stream: TextIO) -> None:
        # The terminal's size ($COLUMNS and $LINES first); 80 x 24 where it says 0 (a fresh pty, a
        # serial line): tqdm would draw a bar 0 wide, or hide it below a screen 0 lines high.
        size = shutil.get_terminal_size()
        self._bar = tqdm(total=100, desc=name, file=stream, bar_format=BAR_FORMAT, leave=True,
                         ncols=size.columns or 80, nrows=size.lines or 24)

    def update(self, percent: float) -> None:
        """The engine's figure (it only grows; a retry from 0 after an out-of-memory keeps the bar)."""
        step = min(100.0, percent) - self._bar.n
        if step > 0:
            self._bar.update(step)

    def done(self) -> None:
        """The file is finished (a silent one never reports a figure)."""
        self.update(100.0)

    def close(self) -> None:
        self._bar.close()


@contextlib.contextmanager
def file_bar(name: str, stream: TextIO, shown: bool) -> Iterator[FileBar | None]:
    """A bar for `name` on `stream` while inside, if `shown`; else None."""
    if not shown:
        yield None
        return
    bar = FileBar(name, stream)
    try:
        yield bar
    finally:
        bar.close()
