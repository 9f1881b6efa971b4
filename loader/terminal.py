"""Text for a terminal: job-supplied names and messages, with control characters escaped.

A run key or error message may hold ESC sequences or newlines; printed raw they recolour
a terminal or forge log lines. Escaped, they show as what they are.
"""

from __future__ import annotations

import re

# C0 and C1 control characters, DEL, and the line and paragraph separators.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def printable(text: str) -> str:
    """Return `text` with every control character shown as a Python escape (`\\x1b`)."""
    return _CONTROL.sub(lambda match: match.group().encode("unicode_escape").decode(), text)
