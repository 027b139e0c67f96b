"""Local-backend specifics of retention (the contract itself runs on both backends in
test_backends.py)."""
import datetime as dt

import pytest

from vaults.store import GOVERNANCE, LocalBackend, RetentionError

NOW = dt.datetime.now(dt.timezone.utc)


def test_damaged_retention_metadata_fails_closed(tmp_path):
    b = LocalBackend(str(tmp_path / "b"), create=True)
    b.put("x/y", b"y")
    b.set_retention("x/y", NOW + dt.timedelta(days=1), GOVERNANCE)
    side = tmp_path / "b" / ".retention" / "x" / "y.json"
    raw = bytearray(side.read_bytes())
    raw[len(raw) // 2] ^= 1
    side.write_bytes(bytes(raw))
    with pytest.raises(RetentionError):
        b.delete("x/y", bypass_governance=True)
    assert b.get("x/y") == b"y"
