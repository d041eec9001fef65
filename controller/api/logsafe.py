"""Text from a request, made safe for a log line.

A path with %0a would otherwise write a forged line into the log, and NUL or
terminal escapes would go in raw: every character that is not printable is
written as a Python escape (\\n, \\x00, \\x1b, \\u2028), and a long text is cut.
"""
from __future__ import annotations

import traceback

LOG_TEXT_MAX = 1024


def printable(text, limit: int = LOG_TEXT_MAX) -> str:
    s = str(text)
    more = len(s) - limit
    if more > 0:
        s = s[:limit]
    if not s.isprintable():
        s = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in s)
    return s + (f"...({more} more characters)" if more > 0 else "")


_TRACEBACK_FRAMING = ("Traceback (most recent call last):\n",
                      "\nDuring handling of the above exception, another exception occurred:\n\n",
                      "\nThe above exception was the direct cause of the following exception:\n\n")


def exception_text(exc: BaseException) -> str:
    """A traceback whose exception messages (which may quote request data) are
    escaped; the frames come from the source files and are kept as they are."""
    out = []
    for chunk in traceback.TracebackException.from_exception(exc).format():
        if chunk in _TRACEBACK_FRAMING or chunk.startswith(("  File ", "  [Previous line")):
            out.append(chunk)
        else:
            out.append(printable(chunk.rstrip("\n"), limit=4 * LOG_TEXT_MAX) + "\n")
    return "".join(out).rstrip("\n")
