"""Every public function of the engine is typed: each parameter and the return value carry an annotation.

Public: a function or method whose name (and whose class's and module's names) do not start with ``_``;
nested functions are not public. mypy checks the bodies of typed functions (``.ci/run``), so an annotation
that lies fails CI.
"""

import ast

from tests.helpers import REPO


def _untyped(tree: ast.Module, module_public: bool):
    def visit(node, public):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                if public and (not child.name.startswith("_") or child.name == "__init__"):
                    args = child.args
                    params = [a for a in args.posonlyargs + args.args + args.kwonlyargs if a.arg not in ("self", "cls")]
                    params += [a for a in (args.vararg, args.kwarg) if a is not None]
                    missing = [a.arg for a in params if a.annotation is None]
                    if child.returns is None and child.name != "__init__":
                        missing.append("return")
                    if missing:
                        yield f"{child.name} ({', '.join(missing)}) line {child.lineno}"
            elif isinstance(child, ast.ClassDef):
                yield from visit(child, public and not child.name.startswith("_"))
    yield from visit(tree, module_public)


def test_every_public_engine_function_is_typed():
    src = REPO / "src" / "cryoforge"
    found = []
    for path in sorted(src.rglob("*.py")):
        public = not path.name.startswith("_") or path.name == "__init__.py"
        found += [f"{path.relative_to(src)}: {u}" for u in _untyped(ast.parse(path.read_text()), public)]
    assert not found, f"{len(found)} public functions lack annotations, e.g. {found[:5]}"


def test_the_checker_sees_a_missing_annotation():
    tree = ast.parse("def f(x: int, y):\n    return x\n\nclass A:\n    def g(self) -> None: ...\n\ndef _h(z): ...\n")
    assert list(_untyped(tree, True)) == ["f (y, return) line 1"]
    assert not list(_untyped(tree, False))
