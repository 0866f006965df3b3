"""The CPU trainer's malloc set-up: glibc's two documented parameters, and only when the user has not
chosen an allocator or malloc settings of their own."""

from __future__ import annotations

import pytest

from aekit.training import allocator


class FakeLibc:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def mallopt(self, param: int, value: int) -> int:
        self.calls.append((param, value))
        return 1


@pytest.fixture
def libc(monkeypatch):
    fake = FakeLibc()
    monkeypatch.setattr(allocator.ctypes, "CDLL", lambda name: fake)
    monkeypatch.setattr(allocator.sys, "platform", "linux")
    monkeypatch.setattr(allocator.platform, "libc_ver", lambda: ("glibc", "2.36"))
    monkeypatch.setattr(allocator, "_done", None)
    for key in ("AEKIT_MALLOC", "LD_PRELOAD", "GLIBC_TUNABLES", "MALLOC_ARENA_MAX", "MALLOC_TRIM_THRESHOLD_"):
        monkeypatch.delenv(key, raising=False)
    return fake


def test_sets_the_mmap_and_trim_thresholds_once(libc):
    assert allocator.keep_freed_memory()
    assert allocator.keep_freed_memory()  # once a process
    assert libc.calls == [(-3, 32 << 20), (-1, 128 << 20)]


@pytest.mark.parametrize(
    ("key", "value", "why"),
    [
        ("AEKIT_MALLOC", "default", "AEKIT_MALLOC=default"),
        ("MALLOC_TRIM_THRESHOLD_", "0", "malloc settings in the environment"),
        ("LD_PRELOAD", "/usr/lib/libjemalloc.so.2", "LD_PRELOAD"),
    ],
)
def test_leaves_a_users_own_choice_alone(libc, monkeypatch, key, value, why):
    monkeypatch.setenv(key, value)
    assert why in allocator.why_not()
    assert not allocator.keep_freed_memory()
    assert libc.calls == []


def test_not_on_other_c_libraries(libc, monkeypatch):
    monkeypatch.setattr(allocator.platform, "libc_ver", lambda: ("", ""))
    assert not allocator.keep_freed_memory()
    assert libc.calls == []


def test_a_cpu_trainer_sets_it_up(libc, monkeypatch):
    from aekit.config import TrainConfig
    from aekit.models import build_model
    from aekit.training.trainer import Trainer

    Trainer(build_model("dense", input_shape=(1, 8, 8)), TrainConfig(device="cpu"))
    assert libc.calls == [(-3, 32 << 20), (-1, 128 << 20)]
