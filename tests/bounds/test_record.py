"""The audit's record is a result, not a scratch file: kills, weaker runs, resumes, bad budgets, damaged files."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from bounds import audit, search, vertices
from bounds.claims import BY_NAME

ROOT = Path(__file__).resolve().parents[2]
#: Runs ``python -m bounds.audit`` with the record, worst instances and counterexamples under a folder.
CLI = """
import sys
from pathlib import Path
from bounds import audit, search
folder = Path(sys.argv[1])
search.RECORD_PATH, search.WORST_DIR = folder / "record.json", folder / "worst"
search.COUNTEREXAMPLE_DIR = folder / "counterexamples"
sys.exit(audit.main(sys.argv[2:]))
"""


def _paths(tmp_path: Path) -> dict:
    return {
        "record_path": tmp_path / "record.json",
        "worst_dir": tmp_path / "worst",
        "counterexample_dir": tmp_path / "counterexamples",
    }


@pytest.fixture
def committed(tmp_path) -> Path:
    """A finished 2-s search of eq22 and eq44: the committed record under tmp_path."""
    search.run_search([BY_NAME["eq22"], BY_NAME["eq44"]], budget_s=2.0, workers=1, **_paths(tmp_path))
    return tmp_path / "record.json"


def _start(tmp_path: Path, *argv: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", CLI, str(tmp_path), *argv],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_killed_search_leaves_the_committed_record_as_it_was(committed, tmp_path):
    """Killed after its first claims, a search has touched neither the record nor the worst instances; it leaves
    its own record, which --resume continues."""
    before = committed.read_text()
    worst_before = (tmp_path / "worst" / "eq22.json").read_text()
    claims = ["eq20", "eq22", "eq24", "eq25", "eq29", "eq44"]
    process = _start(tmp_path, "--search", "--claims", *claims, "--budget-s", "12", "--workers", "1")
    pending = search.pending_record_path(committed)
    deadline = time.monotonic() + 60
    while not pending.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert pending.exists() and committed.read_text() == before
    assert (tmp_path / "worst" / "eq22.json").read_text() == worst_before
    done = set(json.loads(pending.read_text())["claims"])
    assert done and done < set(claims)
    notes: list[str] = []
    paths = _paths(tmp_path)
    record = search.run_search([BY_NAME[c] for c in claims], 12.0, workers=1, resume=True, notes=notes, **paths)
    assert f"resume: kept {len(done)} claim(s)" in notes[0]
    assert set(record["claims"]) == set(claims) and not pending.exists()


def test_a_killed_search_takes_its_workers_with_it(tmp_path):
    process = _start(tmp_path, "--search", "--claims", "eq20", "eq22", "--budget-s", "60", "--workers", "2")
    parent = psutil.Process(process.pid)
    deadline = time.monotonic() + 60
    while len(parent.children(recursive=True)) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    workers = parent.children(recursive=True)
    assert len(workers) >= 2
    process.send_signal(signal.SIGKILL)
    process.wait()
    _gone, alive = psutil.wait_procs(workers, timeout=15)
    assert not alive, [p.pid for p in alive]


def test_a_weaker_search_keeps_the_stronger_entries_and_says_so(committed, tmp_path):
    before = json.loads(committed.read_text())["claims"]["eq22"]
    worst_before = (tmp_path / "worst" / "eq22.json").read_text()
    notes: list[str] = []
    record = search.run_search([BY_NAME["eq22"]], budget_s=0.5, workers=1, notes=notes, **_paths(tmp_path))
    assert record["claims"]["eq22"] == before and (tmp_path / "worst" / "eq22.json").read_text() == worst_before
    assert any("eq22: kept the committed entry" in note for note in notes)
    assert not (tmp_path / "worst" / search.PENDING).exists()
    record = search.run_search([BY_NAME["eq22"]], budget_s=0.5, workers=1, replace=True, **_paths(tmp_path))
    assert record["claims"]["eq22"]["budget_s"] == 0.5 and record["claims"]["eq44"]["budget_s"] == 1.0


@pytest.mark.parametrize("budget", ["nan", "inf", "-inf", "0", "-1"])
def test_budgets_must_be_finite_and_positive(budget, capsys):
    with pytest.raises(SystemExit) as stop:
        audit.main(["--search", f"--budget-s={budget}"])
    assert stop.value.code == 2 and "--budget-s: must be finite and positive" in capsys.readouterr().err
    with pytest.raises(ValueError, match="budget_s: must be finite and positive"):
        search.run_search([BY_NAME["eq22"]], budget_s=float(budget), workers=1)


def test_a_damaged_record_is_a_one_line_error_and_replace_rebuilds_it(committed, tmp_path):
    committed.write_text(committed.read_text()[:200])
    process = _start(tmp_path, "--examples", "2")
    _out, err = process.communicate(timeout=120)
    assert process.returncode == 2 and err.count("\n") == 1
    assert err.startswith(f"error: {committed}: damaged record") and "Traceback" not in err
    process = _start(tmp_path, "--search", "--claims", "eq22", "--budget-s", "0.5", "--workers", "1", "--replace")
    _out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert "rebuilding the record from scratch" in err
    assert set(json.loads(committed.read_text())["claims"]) == {"eq22"}


def test_a_damaged_instance_file_is_a_one_line_error_naming_it(committed, tmp_path):
    worst = tmp_path / "worst" / "eq22.json"
    worst.write_text(worst.read_text()[:100])
    process = _start(tmp_path, "--examples", "2", "--claims", "eq22")
    _out, err = process.communicate(timeout=120)
    assert process.returncode == 2 and err.count("\n") == 1
    assert err.startswith(f"error: {worst}: damaged instance file")


def test_a_smaller_vertex_run_keeps_the_recorded_entries(tmp_path):
    paths = {"record_path": tmp_path / "record.json", "counterexample_dir": tmp_path / "counterexamples"}
    claims = [BY_NAME["lemma1"]]
    record = vertices.run_vertices(claims, [(2, 2, 2)], **paths)
    before = record["vertices"]["lemma1"]["2x2x2"]
    assert before["exhaustive"]
    notes: list[str] = []
    record = vertices.run_vertices(claims, [(2, 2, 2)], max_vertices=10, sample_vertices=50, notes=notes, **paths)
    assert record["vertices"]["lemma1"]["2x2x2"] == before
    assert any("lemma1 2x2x2: kept the recorded entry" in note for note in notes)
    record = vertices.run_vertices(claims, [(2, 2, 2)], max_vertices=10, sample_vertices=50, replace=True, **paths)
    assert not record["vertices"]["lemma1"]["2x2x2"]["exhaustive"]


def test_resume_merges_every_finished_entry_and_leaves_no_staged_file(committed, tmp_path):
    """An unfinished search's entries are merged on --resume even for claims not asked for now, their staged
    worst instances are moved into place, and nothing is left under worst/.pending."""
    entry = json.loads(committed.read_text())["claims"]["eq44"]
    staging = tmp_path / "worst" / search.PENDING
    staging.mkdir()
    (staging / "eq44.json").write_text((tmp_path / "worst" / "eq44.json").read_text())
    (staging / "orphan.json").write_text("{}")
    pending_entry = {**entry, "budget_s": 5.0, "worst_instance": "bounds/worst/.pending/eq44.json"}
    search.pending_record_path(committed).write_text(json.dumps({"claims": {"eq44": pending_entry}}))
    notes: list[str] = []
    record = search.run_search([BY_NAME["eq22"]], 1.0, workers=1, resume=True, notes=notes, **_paths(tmp_path))
    assert record["claims"]["eq44"]["budget_s"] == 5.0 and record["claims"]["eq44"]["worst_instance"].endswith(
        "worst/eq44.json"
    )
    assert not staging.exists() and not search.pending_record_path(committed).exists()
    assert "resume: kept 1 claim(s)" in notes[0]
