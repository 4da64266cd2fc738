"""The glibc heap hygiene the daemon applies (edge/node/heap.py)."""

from __future__ import annotations

import os
import subprocess
import sys


def test_trim_counts_and_cap_is_two_in_a_fresh_process() -> None:
    code = ("from edge.node.heap import Heap\n"
            "h = Heap(); h.cap_arenas(); h.trim(); h.trim(); print(h.arena_cap, h.trims, h.mmap_threshold)")
    env = {k: v for k, v in os.environ.items() if k not in ("MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == ["2", "2", "1048576"]


def test_large_frames_freed_go_back_to_the_system() -> None:
    """With the threshold fixed, a 6 MB frame freed after a larger one is unmapped, not kept as heap
    high-water (glibc's dynamic threshold would have moved it into the heap after the first large free)."""
    code = """
from edge.node.heap import Heap
def anon():
    for line in open('/proc/self/status'):
        if line.startswith('RssAnon:'):
            return int(line.split()[1]) / 1024
import sys
if sys.argv[1] == "fixed":
    Heap().cap_arenas()
big = bytearray(24_000_000); del big            # raises glibc's dynamic threshold to 24 MB
base = anon()
frames = [bytearray(6_000_000) for _ in range(8)]  # a decoding pass's full-size frames, touched
for f in frames:
    f[::4096] = b"x" * len(f[::4096])
pin = bytearray(1000)                            # a small live block above them keeps the heap from shrinking
del frames
print(round(anon() - base, 1))
"""
    env = {k: v for k, v in os.environ.items() if k not in ("MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_")}
    kept = {mode: float(subprocess.run([sys.executable, "-c", code, mode], capture_output=True, text=True,
                                       env=env, check=True).stdout) for mode in ("dynamic", "fixed")}
    assert kept["dynamic"] > 30 and kept["fixed"] < 12, kept  # of 48 MB freed


def test_operator_value_wins() -> None:
    code = "from edge.node.heap import Heap\nh = Heap(); h.cap_arenas(); print(h.arena_cap, h.mmap_threshold)"
    env = dict(os.environ, MALLOC_ARENA_MAX="4", MALLOC_MMAP_THRESHOLD_="65536")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == ["4", "65536"]


def test_trim_hands_freed_heap_back() -> None:
    """Many small blocks freed out of order leave holes glibc keeps; malloc_trim(0) returns them."""
    code = """
import ctypes, gc
from edge.node.heap import Heap
def rss():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) / 1024
h = Heap()
keep = []
blocks = [bytearray(60_000) for _ in range(2000)]   # below the mmap threshold: on the heap
for i, b in enumerate(blocks):
    if i % 50 == 0:
        keep.append(b)                                # pins the heap's top, so only trim can return the rest
del blocks, b
gc.collect()
before = rss()
h.trim()
print(before - rss())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert float(out.stdout) > 50.0  # of ~117 MB freed in holes
