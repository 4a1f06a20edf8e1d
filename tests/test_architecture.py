"""The shape of the code: one question contract, one question list, imports that point one way."""
import inspect
import re
import subprocess
import sys
from pathlib import Path

from core import questions
from core.questions.base import Question, Trained

ROOT = Path(__file__).resolve().parent.parent


def imports(folder: str) -> list[tuple[str, str]]:
    """(file, imported module) for every import statement in the .py files under `folder`."""
    out = []
    for p in sorted((ROOT / folder).rglob("*.py")):
        for line in p.read_text().splitlines():
            m = re.match(r"\s*(?:from\s+(\S+)\s+import|import\s+(\S+))", line)
            if m:
                out.append((p.relative_to(ROOT).as_posix(), m.group(1) or m.group(2)))
    return out


def test_every_question_has_the_same_train_signature_and_contract():
    expected = inspect.signature(Question.train)
    assert list(expected.parameters) == ["self", "data", "hp", "seed", "device", "ctx"]
    for key in questions.REGISTRY:
        q = questions.get(key)
        assert isinstance(q, Question), key
        assert inspect.signature(type(q).train) == expected, key
        assert isinstance(q.unit, str) and q.unit.startswith(("nats/", "mse")), key
        assert isinstance(q.reference, dict) and set(q.reference) <= set(q.datasets), key
        assert set(q.students) <= set(q.datasets) and all(lo <= hi for lo, hi in q.students.values()), key
        assert q.hparams(None, next(iter(q.presets))) == q.preset(next(iter(q.presets))), key


def test_questions_never_import_the_engine_and_pages_never_import_models_or_the_engine():
    bad = [(f, m) for f, m in imports("core/questions") if re.match(r"(core\.|\.+)(engine|runs|worker|lab)\b", m)]
    assert bad == [], bad
    bad = [(f, m) for f, m in imports("pages") if re.match(r"core\.(models|engine|runs|worker|lab)\b", m)]
    assert bad == [], bad
    assert not (ROOT / "pages" / "ui.py").exists() and not (ROOT / "pages" / "questions_index.py").exists()


def test_the_engine_does_not_import_the_questions_at_module_level():
    """The engine is handed the registry as a validator; only the worker's main() looks a question up."""
    code = ("import sys, core.engine; print(any(m.startswith('core.questions') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_one_question_list_feeds_the_registry_and_the_navigation():
    keys = [k for e in questions.QUESTIONS for k in e.parts]
    assert keys == list(questions.REGISTRY)
    app = (ROOT / "app.py").read_text()
    assert "QUESTIONS" in app and "q1_1d.py" not in app    # navigation derived from the list, not restated


def test_a_trained_result_is_a_trained():
    from core.questions.base import Data

    t = questions.get("q1a").train(Data([0, 1, 1, 2] * 10, [0, 1, 2, 1], d=3), {"epochs": 1, "batch_size": 8})
    assert isinstance(t, Trained) and t.config["question"] == "q1a" and len(t.result.test_losses) == 2


def test_ui_is_in_rooms_of_at_most_250_lines_and_its_init_only_re_exports():
    sizes = {p.relative_to(ROOT).as_posix(): len(p.read_text().splitlines()) for p in (ROOT / "ui").rglob("*.py")}
    assert {f: n for f, n in sizes.items() if n > 250} == {}, sizes
    assert not re.search(r"^(def|class|@)", (ROOT / "ui" / "__init__.py").read_text(), re.M)


def test_pages_list_and_load_models_only_through_the_model_picker():
    """One picker, one cache, one error rule (ui.models): no page lists or loads models itself."""
    for p in sorted((ROOT / "pages").glob("*.py")):
        assert not re.search(r"sources\.(load|choices|best_first)\(|\bload_model\(", p.read_text()), p.name
    for name in ("q2_pixelcnn", "q3_transformer", "q5_poetry", "q6_multimodal"):
        src = (ROOT / "pages" / f"{name}.py").read_text()
        assert "ui.model_picker(" in src and "cache_resource" not in src, name


# Modules outside core/questions that may still name a question, and why: each names one, never branches over many.
QUESTION_KEYS_ALLOWED = {
    # the notebook's functions (q1_a, q2_b, ...): each is one question part, and trains that part by its key
    "core/homework.py",
}


def question_key_literals(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every string constant in `path` that is a question key ("q2a", "q6"), docstrings aside."""
    import ast

    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
            and re.fullmatch(r"q[1-9][a-z]?", node.value)]


def test_only_the_questions_know_the_question_keys():
    """core.sources, core.evaluate, core.report, ... find what they need on the question (core.questions); none of
    them branches on a question key or keeps its own table of questions; nor does the ui package (pages may)."""
    found = {}
    for p in sorted([*(ROOT / "core").rglob("*.py"), *(ROOT / "ui").rglob("*.py"), ROOT / "app.py"]):
        rel = p.relative_to(ROOT).as_posix()
        if rel.startswith("core/questions/") or rel in QUESTION_KEYS_ALLOWED:
            continue
        hits = question_key_literals(p)
        if hits:
            found[rel] = hits
    assert found == {}, f"question keys outside core/questions (move this knowledge onto the question): {found}"


def import_graph(*folders: str) -> dict[str, set[str]]:
    """module -> the modules of `folders` it imports: every import statement, inside functions too, relative ones
    resolved; `from P import name` counts as importing P.name when that is a module, else P."""
    import ast

    def name_of(p: Path) -> str:
        parts = list(p.relative_to(ROOT).with_suffix("").parts)
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    files = {name_of(p): p for folder in folders for p in sorted((ROOT / folder).rglob("*.py"))}

    def known(target: str) -> str | None:
        while target and target not in files:
            target = target.rpartition(".")[0]
        return target or None

    graph = {}
    for mod, p in files.items():
        package = mod if p.name == "__init__.py" else mod.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")
                    anchor = anchor[:len(anchor) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
                if node.level:   # a relative import names a module of ours, or it fails when it runs
                    assert all(t in files for t in targets), f"{mod}: from {'.' * node.level}{node.module or ''} " \
                                                             f"names no module ({targets})"
            else:
                continue
            edges |= {t for t in map(known, targets) if t and t != mod}
        graph[mod] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles: for every strongly connected group of more than one module, one circle through it."""
    index, low, stack, on, groups, counter = {}, {}, [], set(), [], [0]

    def visit(v):   # Tarjan's algorithm
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(set(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    out = []
    for group in groups:   # one circle: walk from the smallest member inside the group until a module repeats
        start = min(group)
        path, seen = [start], {start}
        while True:
            nxt = min(w for w in graph[path[-1]] if w in group)
            if nxt in seen:
                out.append(path[path.index(nxt):] + [nxt])
                break
            path.append(nxt)
            seen.add(nxt)
    return out


def test_no_import_circles_in_core_and_ui():
    """Imports point one way, function-level ones too: a circle means two modules that cannot be understood (or
    loaded) one without the other."""
    graph = import_graph("core", "ui")
    assert "core.questions.base" in graph and "core.engine.launcher" in graph
    found = cycles(graph)
    assert found == [], "import circles:\n" + "\n".join(" -> ".join(c) for c in found)


def test_the_circle_finder_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
