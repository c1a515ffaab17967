"""PeakMemory measures the block's own peak, not the process's history."""

from hfrepro.finetune.memory import PeakMemory


def test_peak_of_the_block_only():
    big = bytearray(300 * 2**20)   # an earlier peak of the process
    del big
    with PeakMemory() as pm:
        x = bytearray(120 * 2**20)
        x[::4096] = b"\x01" * len(x[::4096])   # touch the pages
        del x
    assert pm.peak_bytes - pm.start_bytes >= 100 * 2**20
    assert pm.peak_bytes - pm.start_bytes < 250 * 2**20
