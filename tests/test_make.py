"""`make install` checks the disk before torch's 6 GB install (stop 42's CI ran out of space mid-install)."""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def make_install(venv, min_free_gb, python="python3"):
    return subprocess.run(["make", "-C", str(ROOT), "install", f"VENV={venv}", f"MIN_FREE_GB={min_free_gb}",
                           f"PYTHON={python}"], capture_output=True, text=True)


def test_too_little_disk_stops_before_anything_is_created(tmp_path):
    ran = make_install(tmp_path / "venv", 10**6)  # no disk here has a petabyte free
    assert ran.returncode != 0
    assert "GB free on the disk of" in ran.stdout and "MIN_FREE_GB=2" in ran.stdout, ran.stdout + ran.stderr
    assert not (tmp_path / "venv").exists()


def test_enough_disk_goes_on_to_create_the_venv(tmp_path):
    # PYTHON=false makes the next step, creating the venv, fail: only that it was reached is checked.
    ran = make_install(tmp_path / "venv", 0, python="false")
    assert ran.returncode != 0
    assert "GB free" not in ran.stdout and "false -m venv" in ran.stdout, ran.stdout + ran.stderr
