"""Peak memory of a block of work, in-process: CUDA allocator peak on a GPU, sampled RSS on CPU.

    with PeakMemory() as pm:
        trainer.train()
    pm.peak_bytes        # the highest resident set size seen while the block ran (CPU), or CUDA peak

On CPU, freed tensors are handed back to the OS before the block starts (gc + malloc_trim), so a method
measured after another does not inherit its leftovers.
"""

from __future__ import annotations

import ctypes
import gc
import os
import resource
import threading
import time


def rss_bytes() -> int:
    """Current resident set size of this process (Linux /proc; ru_maxrss elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def release_memory() -> None:
    """Collect garbage and return freed heap pages to the OS (glibc), so the next measurement starts clean."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class PeakMemory:
    def __init__(self, interval: float = 0.02):
        self.interval = interval
        self.peak_bytes = 0
        self.start_bytes = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._cuda = False

    def __enter__(self) -> "PeakMemory":
        import torch

        release_memory()
        self._cuda = torch.cuda.is_available()
        if self._cuda:
            torch.cuda.reset_peak_memory_stats()
            self.start_bytes = torch.cuda.memory_allocated()
        else:
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

        if self._cuda:
            self.peak_bytes = int(torch.cuda.max_memory_allocated())
        else:
            self._stop.set()
            if self._thread:
                self._thread.join()
            self.peak_bytes = max(self.peak_bytes, rss_bytes())

    @property
    def kind(self) -> str:
        return "cuda_allocated" if self._cuda else "rss"
