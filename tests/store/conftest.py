import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

KEY = bytes(range(32))


@pytest.fixture
def key():
    return KEY


@pytest.fixture
def make_store(tmp_path):
    from vaults.store import LocalBackend, Store
    opened = []

    def make(name="store", workers=2):
        s = Store.init(LocalBackend(str(tmp_path / name), create=True), KEY,
                       cache_dir=str(tmp_path / f"{name}-cache"), workers=workers)
        opened.append(s)
        return s

    yield make
    for s in opened:
        try:
            s.close()
        except Exception:
            pass
