"""Process settings (betenet/runtime.py): threads, glibc's allocator, and the training config that applies them."""

import platform
import subprocess
import sys

import pytest
import torch

from betenet.errors import InputError
from betenet.runtime import configure, keep_freed_memory

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_threads_are_set_and_none_keeps_torchs_choice(restore_threads):
    assert configure(threads=1, keep_memory=False).threads == 1
    assert torch.get_num_threads() == 1
    assert configure(threads=None, keep_memory=False).threads == 1  # unchanged
    with pytest.raises(InputError, match="runtime.threads"):
        configure(threads=-2)


#: Run in a fresh interpreter: the allocator's state is process-wide, and what earlier tests of this process
#: allocated and freed (or already configured) would decide where the tensors land. The pattern is the
#: training step's: several large temporaries live at once, then all freed; glibc's defaults give that
#: memory back at each free (about one fault per page, every cycle, measured when this test was written).
FAULT_PROBE = """
import resource, torch
from betenet.runtime import keep_freed_memory
torch.set_num_threads(1)
assert keep_freed_memory()

def cycle():
    held = [torch.ones(3_000_000, dtype=torch.float64) for _ in range(4)]  # 4 x 24 MB live at once, touched
    del held

for _ in range(3):
    cycle()  # the heap grows to its steady state
faults = []
for _ in range(3):  # the fewest of three cycles: an allocation elsewhere may move one tensor once
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    cycle()
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(min(faults))
"""


@pytest.mark.skipif(not GLIBC, reason="the allocator settings apply to glibc only")
def test_freed_memory_is_reused_without_page_faults():
    """After the settings, allocating and freeing the same large tensors again costs no fresh page faults."""
    res = subprocess.run([sys.executable, "-c", FAULT_PROBE], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    faults = int(res.stdout.strip().splitlines()[-1])
    pages = 4 * 3_000_000 * 8 // 4096  # what one cycle would fault in if every tensor were fresh memory
    assert faults < pages // 10, f"{faults} page faults for {pages} pages of reused tensors"


def test_other_c_libraries_are_left_alone(monkeypatch):
    monkeypatch.setattr(platform, "libc_ver", lambda *a, **k: ("musl", "1.2"))
    assert keep_freed_memory() is False
    monkeypatch.setattr(platform, "system", lambda: "Darwin")
    assert configure(threads=None, keep_memory=True).keep_freed_memory is False
