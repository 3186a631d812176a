"""Process settings (betenet/runtime.py): threads, glibc's allocator, and the training config that applies them."""

import platform
import resource

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


@pytest.mark.skipif(not GLIBC, reason="the allocator settings apply to glibc only")
def test_freed_memory_is_reused_without_page_faults():
    """After the settings, allocating and freeing the same 24 MB tensors again costs no fresh page faults."""
    assert keep_freed_memory()

    def cycle():
        for _ in range(4):
            a = torch.ones(3_000_000, dtype=torch.float64)  # 24 MB, touched
            b = a * 2.0
            del a, b

    cycle()  # the heap grows once
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    cycle()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    pages = 2 * 3_000_000 * 8 // 4096  # what one cycle would fault in if every tensor were fresh memory
    assert faults < pages // 10, f"{faults} page faults for {pages} pages of reused tensors"


def test_other_c_libraries_are_left_alone(monkeypatch):
    monkeypatch.setattr(platform, "libc_ver", lambda *a, **k: ("musl", "1.2"))
    assert keep_freed_memory() is False
    monkeypatch.setattr(platform, "system", lambda: "Darwin")
    assert configure(threads=None, keep_memory=True).keep_freed_memory is False
