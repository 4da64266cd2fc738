"""Signal handlers that never take a lock in the interrupted thread.

A handler runs in the main thread between two bytecodes, possibly while that thread holds the internal
lock of the very ``threading.Event`` it waits on; ``Event.set()`` from the handler then deadlocks on that
non-reentrant lock. Seen as `edgecam central web` ignoring SIGTERM once in a loaded CI run. The handler
here only starts a short thread that does the work once the main thread has let go of the lock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


def deferred(action: Callable[[], Any]) -> Callable[[int, Any], None]:
    """A ``signal.signal`` handler that runs ``action`` on its own thread."""

    def handler(_signum: int, _frame: Any) -> None:
        threading.Thread(target=action, name="signal", daemon=True).start()

    return handler
