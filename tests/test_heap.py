"""The glibc heap hygiene the daemon applies (edge/node/heap.py)."""

from __future__ import annotations

import os
import subprocess
import sys


def test_trim_counts_and_cap_is_two_in_a_fresh_process() -> None:
    code = ("from edge.node.heap import Heap\n"
            "h = Heap(); h.cap_arenas(); h.trim(); h.trim(); print(h.arena_cap, h.trims)")
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == ["2", "2"]


def test_operator_value_wins() -> None:
    code = "from edge.node.heap import Heap\nh = Heap(); h.cap_arenas(); print(h.arena_cap)"
    env = dict(os.environ, MALLOC_ARENA_MAX="4")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "4"


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
