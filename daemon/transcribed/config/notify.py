"""The `hooks.notify` section: notifications through Apprise, and the rules its values follow.

Apart from `schema` because its templates have a rule of their own (only the fields a message
has, hooks/message.py), which every error names by its key, as `.checks`' do.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError

#: The fields a notification's title and body may name (hooks/message.py fills them).
MESSAGE_FIELDS = ("file", "name", "outcome", "outcome_text", "summary", "duration", "took",
                  "language", "first_words", "error", "error_kind", "results", "where", "job_id")


@dataclass(frozen=True)
class Notify:
    """Notifications through Apprise (ntfy, Gotify, Telegram, Matrix, e-mail and a hundred more):
    a third kind of completion hook, on the same queue, events and retries (docs/notifications.md)."""

    #: A file of Apprise URLs, one per line (blank lines and `#` comments skipped). They hold
    #: tokens and passwords: read at start, never logged. null: no notifications.
    urls_file: Path | None = None
    #: The message's title and body; `{name}` fields are filled per job (docs/notifications.md).
    #: Lines of the body left empty (a field with nothing to say) are dropped.
    title: str = "{outcome_text}: {name}"
    body: str = "{summary}\n{first_words}\n{where}"
    #: How many words of the transcript `{first_words}` quotes.
    first_words: int = 25


def check_notify(notify: Notify) -> None:
    """The templates name only fields a message has (`{file}`, `{summary}`...), with no attribute
    or index lookups: a template is text, not code."""
    for key in ("title", "body"):
        template = getattr(notify, key)
        try:
            fields = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
        except ValueError as exc:
            raise ConfigError(f"hooks.notify.{key}: not a valid template ({exc}); a literal brace "
                              "is written {{ or }}") from None
        unknown = [name for name in fields if name not in MESSAGE_FIELDS]
        if unknown:
            raise ConfigError(f"hooks.notify.{key}: unknown field {{{unknown[0]}}}; known: "
                              + ", ".join(f"{{{name}}}" for name in MESSAGE_FIELDS))
    _positive("hooks.notify.first_words", notify.first_words)


def _positive(key: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{key}: expected a positive integer, got {value!r}")
