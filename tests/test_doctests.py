"""Every public function and class (``aekit.__all__``) shows a runnable ``Example:`` in its
docstring, and the examples run here as doctests (in a temporary folder, small data)."""

from __future__ import annotations

import doctest
import inspect

import pytest

import aekit

DOCUMENTED = [n for n in aekit.__all__ if inspect.isclass(getattr(aekit, n)) or callable(getattr(aekit, n))]


def test_every_public_name_but_the_registry_dict_is_a_function_or_class():
    assert set(aekit.__all__) - set(DOCUMENTED) == {"MODELS"}


@pytest.mark.parametrize("name", DOCUMENTED)
def test_docstring_example_runs(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples write runs/... here
    obj = getattr(aekit, name)
    finder = doctest.DocTestFinder(recurse=False)
    (test,) = finder.find(obj, f"aekit.{name}", module=inspect.getmodule(obj), globs={})
    assert "Example:" in (obj.__doc__ or "") and test.examples, f"aekit.{name} has no Example: with >>> lines"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report: list[str] = []
    runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)
