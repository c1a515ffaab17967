"""Peak memory of a block of work, in-process: CUDA allocator peak on a GPU, peak RSS on CPU.

    with PeakMemory() as pm:
        trainer.train()
    pm.peak_bytes        # the highest resident set size while the block ran (CPU), or the CUDA peak

On Linux the kernel keeps the peak RSS (VmHWM) and lets a process reset it (`echo 5 > /proc/self/clear_refs`),
so no sampling is needed and the measurement costs nothing. Elsewhere a thread samples the RSS every 50 ms.
Freed memory is handed back to the OS first (gc + malloc_trim), so a method measured after another does not
inherit its leftovers.
"""

from __future__ import annotations

import os
import re
import resource
import threading
import time

from hfrepro.runtime import release_memory


def rss_bytes() -> int:
    """Current resident set size of this process (Linux /proc; ru_maxrss elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _hwm_bytes() -> int | None:
    try:
        with open("/proc/self/status") as f:
            m = re.search(r"VmHWM:\s+(\d+)\s*kB", f.read())
        return int(m.group(1)) * 1024 if m else None
    except OSError:
        return None


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _hwm_bytes() is not None
    except OSError:
        return False


class PeakMemory:
    def __init__(self, interval: float = 0.05):
        self.interval = interval
        self.peak_bytes = 0
        self.start_bytes = 0
        self.kind = "rss"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "PeakMemory":
        import torch

        release_memory()
        if torch.cuda.is_available():
            self.kind = "cuda_allocated"
            torch.cuda.reset_peak_memory_stats()
            self.start_bytes = torch.cuda.memory_allocated()
        elif _reset_hwm():
            self.kind = "rss"
            self.start_bytes = rss_bytes()
        else:
            self.kind = "rss_sampled"
            self.start_bytes = self.peak_bytes = rss_bytes()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, rss_bytes())
            time.sleep(self.interval)

    def __exit__(self, *exc) -> None:
        import torch

        if self.kind == "cuda_allocated":
            self.peak_bytes = int(torch.cuda.max_memory_allocated())
        elif self._thread is None:
            self.peak_bytes = max(_hwm_bytes() or 0, rss_bytes())
        else:
            self._stop.set()
            self._thread.join()
            self.peak_bytes = max(self.peak_bytes, rss_bytes())
