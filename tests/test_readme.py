"""The README's test command is the one .ci/run executes."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command():
    ci_commands = [
        line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.startswith("python3 -m venv")
    ]
    assert len(ci_commands) == 1
    assert ci_commands[0] in (ROOT / "README.md").read_text()


def test_thirty_second_example_runs_and_prints_what_the_readme_says(tmp_path, monkeypatch, capsys):
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## 30-second example") :]
    code = section[
        section.index("```python\n") + len("```python\n") : section.index("```\n", section.index("```python"))
    ]
    expected = next(line for line in code.splitlines() if line.startswith("# ") and "..." in line)[2:].split()
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    printed = capsys.readouterr().out.split()
    assert len(printed) == len(expected)
    for value, shown in zip(printed, expected, strict=True):
        assert value.startswith(shown.removesuffix("...")), (value, shown)
    assert (tmp_path / "growth.png").exists()
