"""Where a run writes is checked before anything loads: one line naming the key, exit 2, nothing lost."""

import pytest

from tests.cli_helpers import run_cli
from tests.task_factory import make_task


def _refused(tmp_path, data, *overrides):
    calls = tmp_path / "calls.log"
    proc = run_cli(tmp_path, data, *overrides, f"model.calls_log={calls}")
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and not calls.exists()
    (line,) = [ln for ln in proc.stderr.splitlines() if "paths." in ln]
    return line


def test_a_store_in_a_folder_that_cannot_exist_exits_2_naming_the_key(tmp_path):
    data = make_task(tmp_path / "data", n_images=4)
    (tmp_path / "a_file").write_text("not a folder")
    store = tmp_path / "a_file" / "cache" / "store.sqlite"
    line = _refused(tmp_path, data, f"paths.store={store}")
    assert f"paths.store={store}: the folder {store.parent} cannot be made: {tmp_path / 'a_file'} is a file" in line
    line = _refused(tmp_path, data, f"paths.store={tmp_path}")  # a folder, not the store's file
    assert f"paths.store={tmp_path}: is a folder" in line


def test_a_results_dir_that_is_a_file_exits_2_before_the_compute(tmp_path):
    data = make_task(tmp_path / "data", n_images=4)
    results = tmp_path / "results.txt"
    results.write_text("an earlier export")
    line = _refused(tmp_path, data, f"paths.results_dir={results}")
    assert f"paths.results_dir={results}: {results} is a file, not a folder" in line
    assert results.read_text() == "an earlier export" and not (tmp_path / "store.sqlite").exists()
    line = _refused(tmp_path, data, f"paths.results_dir={results / 'sub'}")
    assert f"the folder {results / 'sub'} cannot be made: {results} is a file" in line


@pytest.mark.parametrize("store, results", [("new/deeper/store.sqlite", "new/results"), ("store.sqlite", None)])
def test_folders_that_do_not_exist_yet_are_made(tmp_path, store, results):
    data = make_task(tmp_path / "data", n_images=4)
    overrides = [f"paths.store={tmp_path / store}", f"paths.results_dir={tmp_path / results if results else 'null'}"]
    proc = run_cli(tmp_path, data, *overrides)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / store).is_file()
    assert results is None or any((tmp_path / results).glob("task-*/runs/*/run.json"))
