"""bench/ stays a package of scripts run as modules (`python -m bench.<kind>.<name>`): each imports cleanly (nothing
runs on import), has main(argv=None) and the one `__main__` guard, and has its row in bench/RESULTS.md's table;
nothing under bench/ or tests/ edits sys.path (pytest.ini's pythonpath makes the repository importable). Imports
only: no benchmark runs here."""
import importlib
import inspect
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
HELPERS = {"bench.server"}          # shared by the scripts (and tests), not scripts themselves
KINDS = {"kernels", "system", "studies"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = sorted(module_name(p) for p in BENCH.rglob("*.py"))
SCRIPTS = [m for m in MODULES if m not in HELPERS and not (BENCH / Path(*m.split(".")[1:]) / "__init__.py").exists()]


def test_the_layout_is_kinds_of_scripts_and_the_helpers():
    top = {p.name for p in BENCH.iterdir() if p.suffix == ".py"}
    assert top == {"__init__.py"} | {h.split(".")[-1] + ".py" for h in HELPERS}, top
    assert {p.name for p in BENCH.iterdir() if p.is_dir() and (p / "__init__.py").exists()} == KINDS
    assert all(m.split(".")[1] in KINDS and m.count(".") == 2 for m in SCRIPTS), SCRIPTS
    assert len(SCRIPTS) >= 14, SCRIPTS


@pytest.mark.parametrize("name", MODULES)
def test_every_module_imports(name):
    importlib.import_module(name)


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_script_has_main_argv_and_a_main_guard(name):
    mod = importlib.import_module(name)
    main = getattr(mod, "main", None)
    assert callable(main), f"{name} has no main()"
    params = list(inspect.signature(main).parameters.values())
    assert params and params[0].name == "argv" and params[0].default is None, f"{name}.main{inspect.signature(main)}"
    assert all(p.default is not inspect.Parameter.empty for p in params), f"{name}.main needs no arguments"
    source = Path(mod.__file__).read_text()
    assert re.search(r'^if __name__ == "__main__":\n    (sys\.exit\()?main\(\)\)?\n\Z', source, re.M), \
        f"{name} should end with the guard calling main()"


def test_every_script_has_its_row_in_the_results_table():
    results = (BENCH / "RESULTS.md").read_text()
    missing = [m for m in SCRIPTS if f"| `python -m {m}` |" not in results]
    assert not missing, missing


def test_nothing_in_bench_or_tests_edits_sys_path():
    edits = re.compile(r"sys\.path\s*(\.\s*(insert|append|extend)\b|\+=|\[[^]]*\]\s*=)")
    found = [f"{p.relative_to(ROOT)}:{i}" for d in ("bench", "tests") for p in (ROOT / d).rglob("*.py")
             for i, line in enumerate(p.read_text().splitlines(), 1) if edits.search(line)]
    assert not found, found
