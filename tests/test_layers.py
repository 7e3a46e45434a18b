"""The library's layers: a module imports only from its own layer or below, and nothing imports in a circle.

Lowest first (DESIGN.md, "Layers"; every import counts, those inside functions too):
"""

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mimo_lite"

LAYERS = [
    ["config", "artifacts", "scaling"],   # the model's config; artifact folders; FLOPs and memory arithmetic
    ["model", "profile", "chat"],   # the architecture; profiles; the chat format
    ["tasks"],                      # verifiable problems, verifiers, sandbox, rewards
    ["data", "tokenizer"],          # corpus -> tokenizer trained on it -> packed mixture
    ["infer"],                      # KV cache, engine, speculative decoding
    ["eval"],                       # sampled answers scored by the tasks' rewards: pass@k
    ["train"],                      # the run scaffold; pre-training and SFT
    ["rl"],                         # GRPO, rollout, reward executor
    ["notebook", "cli", "report", "share", "exercises", "book", ""],   # what notebooks and the command line share;
    #                                       the report; pack/unpack; the exercise checkers; the rendered book; the package face
]
__doc__ += "\n".join(f"  {i}. {', '.join(names)}" for i, names in enumerate(LAYERS))


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def layer_of(module: str) -> int:
    top = module.split(".")[0]
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"mimo_lite.{module} belongs to no layer: add it to LAYERS in {__file__}.")


def imports(module: str, path: Path, known: set[str]) -> set[str]:
    """The kit's modules that `module` imports (relative and absolute, at any depth in the file)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".") if package else []
                base = base[:len(base) - node.level + 1] if node.level > 1 else base
                target = ".".join(base + ([node.module] if node.module else []))
            elif (node.module or "").split(".")[0] == "mimo_lite":
                target = node.module.partition(".")[2]
            else:
                continue
            for alias in node.names:       # `from . import checkpoint` names a module
                sub = f"{target}.{alias.name}".strip(".")
                found.add(sub if sub in known else target)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "mimo_lite":
                    found.add(alias.name.partition(".")[2])
    return {m for m in found if m in known and m != module}


def graph() -> dict[str, set[str]]:
    found = modules()
    return {m: imports(m, p, set(found)) for m, p in found.items()}


def test_every_module_has_a_layer():
    for module in modules():
        layer_of(module)


def test_no_import_from_a_lower_layer_to_a_higher_one():
    upward = [f"mimo_lite.{m} (layer {layer_of(m)}) imports mimo_lite.{t} (layer {layer_of(t)})"
              for m, targets in graph().items() for t in sorted(targets)
              if layer_of(t) > layer_of(m)]
    assert not upward, "imports that run up the layers:\n" + "\n".join(upward)


def test_no_import_cycle():
    g = graph()
    state: dict[str, int] = {}            # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m):
        state[m] = 1
        path.append(m)
        for t in sorted(g[m]):
            if state.get(t) == 1:
                cycle = path[path.index(t):] + [t]
                pytest.fail("import cycle: " + " -> ".join(f"mimo_lite.{c}" for c in cycle))
            if t not in state:
                visit(t)
        path.pop()
        state[m] = 2

    for m in sorted(g):
        if m not in state:
            visit(m)


def test_the_checks_see_a_cycle_and_an_upward_import(tmp_path, monkeypatch):
    """The walker itself: a planted cycle and an upward import are found."""
    fake = tmp_path / "mimo_lite"
    (fake / "tasks").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "tasks" / "__init__.py").write_text("")
    (fake / "config.py").write_text("from .tasks import a\n")
    (fake / "tasks" / "a.py").write_text("def f():\n    from ..config import x\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    g = graph()
    assert g["config"] == {"tasks.a"} and g["tasks.a"] == {"config"}
    with pytest.raises(AssertionError, match="layer 0"):
        test_no_import_from_a_lower_layer_to_a_higher_one()
    with pytest.raises(pytest.fail.Exception, match="import cycle"):
        test_no_import_cycle()
