"""One error type for the user's own mistakes, and the wrapper that turns it into a message and exit code 2.

A `UserError` says *what* went wrong, *where* (a file, a line, a name), and *what to do*. Entry points
(`hfrepro` and every recipe) run through :func:`run_main`, which prints it on one line group, without a
traceback, and exits with code 2. Anything else is a bug in hfrepro and keeps its traceback.
"""

from __future__ import annotations

import errno
import os
import sys
from typing import Callable

EXIT_USER_ERROR = 2
EXIT_DISK_FULL = 3
EXIT_INTERRUPTED = 130


class UserError(Exception):
    """A problem the user can fix: bad input, unknown name, missing asset."""

    def __init__(self, what: str, where: str | None = None, fix: str | None = None):
        self.what, self.where, self.fix = what, where, fix
        super().__init__(self.render())

    def render(self) -> str:
        msg = f"error: {self.what}"
        if self.where:
            msg += f"\n  where: {self.where}"
        if self.fix:
            msg += f"\n  fix:   {self.fix}"
        return msg


class AssetMissing(UserError):
    """An embedded asset (or its raw source) is not available on this machine."""


def disk_full(exc: BaseException | None) -> bool:
    """Whether `exc`, or an exception it was raised from, is the disk running out of space (OSError ENOSPC, or a
    library's own error quoting it, as safetensors' "No space left on device (os error 28)")."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or "No space left on device" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def run_main(fn: Callable[[], object]) -> None:
    """Run an entry point: a UserError becomes its message and exit code 2; a full disk, its message and exit
    code 3 (not a bug: no traceback); Ctrl-C says how to resume."""
    try:
        rc = fn()
    except UserError as e:
        print(e.render(), file=sys.stderr)
        if os.environ.get("HFREPRO_DEBUG"):
            raise
        sys.exit(EXIT_USER_ERROR)
    except KeyboardInterrupt:
        print("\ninterrupted: outputs written so far are complete; run the same command again to resume.",
              file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    except Exception as e:
        if not disk_full(e) or os.environ.get("HFREPRO_DEBUG"):
            raise
        print(UserError("the disk is full (no space left on device), so this run stopped",
                        fix="free disk space (`df -h` shows how much is left), then run the same command again: what "
                            "was finished is kept and the run resumes").render(), file=sys.stderr)
        sys.exit(EXIT_DISK_FULL)
    sys.exit(rc if isinstance(rc, int) else 0)
