"""A file of words (`model.hotwords_file`, a route's or a library's `hotwords_file`): the names and
jargon Whisper should favour, one a line, kept by whoever runs the daemon.

Blank lines and lines starting with `#` are skipped; the words are joined with ", " after the
`hotwords` of the same place. Read at start (a file that cannot be read stops the start, naming
the key) and again whenever it changes (`WordsFiles`), so an office can add a name without a
restart; a file that cannot be read later keeps the words read last.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError

#: A words file larger than this is refused: Whisper reads at most 223 tokens of hotwords (half
#: its 448-token context), a few hundred words; more is a mistake (a dictionary, not a list).
MAX_WORDS_FILE_BYTES = 16 * 1024
#: What joins the words of a file (and a place's `hotwords` before them).
SEPARATOR = ", "


def read_words(path: Path, key: str) -> str:
    """The words of a file, joined; ConfigError naming `key` when it cannot be used."""
    try:
        size = path.stat().st_size
        if size > MAX_WORDS_FILE_BYTES:
            raise ConfigError(f"{key}: {path} holds {size} bytes; at most {MAX_WORDS_FILE_BYTES} (Whisper "
                              "reads a few hundred words of hotwords at most)")
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{key}: {path} is not UTF-8 text") from None
    words = [line.strip() for line in text.splitlines()]
    words = [w for w in words if w and not w.startswith("#")]
    if not words:
        raise ConfigError(f"{key}: {path} holds no words (one a line; # starts a comment)")
    return SEPARATOR.join(words)


def joined(hotwords: str | None, words: str | None) -> str | None:
    """A place's `hotwords`, then the words of its file; None when it sets neither."""
    parts = [part.strip() for part in (hotwords, words) if part and part.strip()]
    return SEPARATOR.join(parts) if parts else None


@dataclass
class WordsFiles:
    """The words files in use, each read again when it changes (its size, mtime or inode)."""

    _read: dict[Path, tuple[tuple[int, int, int], str]] = field(default_factory=dict)
    #: Files that could not be read again, with why (the words read last are used meanwhile).
    unreadable: dict[Path, str] = field(default_factory=dict)

    def words(self, path: Path, key: str) -> str:
        """The file's words now; the words read last when it cannot be read (first time: error)."""
        try:
            st = os.stat(path)
            stamp = (st.st_size, st.st_mtime_ns, st.st_ino)
        except OSError as exc:
            return self._last(path, key, exc.strerror or str(exc))
        known = self._read.get(path)
        if known is not None and known[0] == stamp:
            return known[1]
        try:
            text = read_words(path, key)
        except ConfigError as exc:
            return self._last(path, key, str(exc))
        self._read[path] = (stamp, text)
        self.unreadable.pop(path, None)
        return text

    def _last(self, path: Path, key: str, why: str) -> str:
        known = self._read.get(path)
        if known is None:
            raise ConfigError(f"{key}: cannot read {path}: {why}")
        self.unreadable[path] = why
        return known[1]
