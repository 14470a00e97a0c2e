"""The README's usage example runs and prints what its comments say."""

import contextlib
import io
import pathlib
import re

import pytest


def test_readme_example_runs_and_prints_its_comments():
    pytest.importorskip("torch")
    text = (pathlib.Path(__file__).parent.parent / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    printed = out.getvalue().splitlines()
    expected = [m.group(1).split(":")[0].strip() for m in re.finditer(r"print\(.*\)\s+# (.*)", code)]
    assert len(printed) == len(expected) == 2
    assert printed[0] == expected[0]
    assert printed[1].replace(" ", "") == expected[1].replace(" ", "")
