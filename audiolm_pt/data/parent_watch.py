"""Worker processes that exit when the process that started them is gone.

A trainer killed with SIGKILL cannot stop its Grain workers: they live on (holding the
pipeline's memory, about 900 MB each on the demo), and because they keep the multiprocessing
resource tracker's pipe open, the tracker never learns that its owner died and never unlinks the
semaphores and shared memory registered with it. Each worker therefore watches its parent
process id and exits once it changes (re-parented to init or a subreaper).
"""

import os
import threading
import time

POLL_SECONDS = 1.0


def exit_with_parent(*_worker_position: int) -> None:
    """Starts the watch in this (worker) process; callable as Grain's `worker_init_fn`
    (worker index, worker count) or a pool's `initializer` (no arguments)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(POLL_SECONDS)
        os._exit(1)  # no clean-up to run: the parent that would receive our output is gone

    threading.Thread(target=watch, name="exit_with_parent", daemon=True).start()
