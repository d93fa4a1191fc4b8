"""Results files get the mode the process umask gives any new file (not mkstemp's 0600)."""

import os
import stat

import pytest

from optimize.results_files import atomic_write_text


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_results_files_follow_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        target = tmp_path / "shared" / "M_sep_A.csv"
        atomic_write_text(target, "a,b\n")
        atomic_write_text(target, "a,b\n1,2\n")  # a rewrite too
        plain = tmp_path / "plain.txt"
        plain.write_text("x")  # what any other file gets
        assert stat.S_IMODE(target.stat().st_mode) == mode == stat.S_IMODE(plain.stat().st_mode)
        assert os.umask(umask) == umask  # reading it left it as it was
    finally:
        os.umask(old)
    assert target.read_text() == "a,b\n1,2\n" and not list(target.parent.glob(".*.tmp"))
