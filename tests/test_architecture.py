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
    bad = [(f, m) for f, m in imports("core/questions") if re.match(r"(core\.|\.\.?)(engine|runs|worker|lab)\b", m)]
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
