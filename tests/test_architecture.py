"""The architecture rules of semsynth, enforced: import contracts, no import cycle, ruff clean.

The rules themselves live in pyproject.toml ([tool.importlinter], [tool.ruff]); README.md,
"Architecture", explains them. These tests only run the tools and turn their reports into failures,
so that `bash run.sh test` (CI) breaks when a rule does. All of them take a second or two.
"""

import ast
import os
import shutil
import subprocess
import sys
import tomllib

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Packages that hold no library code and sit outside the layers (they may import anything).
UNLAYERED_PACKAGES = {"tests", "bench"}


def _pyproject() -> dict:
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)


def _root_packages() -> list[str]:
    return _pyproject()["tool"]["importlinter"]["root_packages"]


def _package_dirs() -> set[str]:
    """Top-level package directories of the repository (those with an __init__.py)."""
    return {
        name for name in os.listdir(ROOT) if os.path.isfile(os.path.join(ROOT, name, "__init__.py"))
    }


def _script_modules() -> list[str]:
    """Top-level modules of the repository: train.py, flags.py, ... (the scripts' layer)."""
    return sorted(name[:-3] for name in os.listdir(ROOT) if name.endswith(".py"))


def _venv_tool(name: str) -> str:
    """Path of a console script installed beside the running interpreter (the venv's bin/)."""
    path = shutil.which(name, path=os.path.dirname(sys.executable))
    if path is None:
        pytest.fail(
            f"{name} is not installed beside {sys.executable}: pip install -r requirements-test.txt"
        )
    return path


def _run(command: list[str]) -> subprocess.CompletedProcess:
    # --no-cache everywhere: the checks must not write into the working tree.
    env = dict(os.environ, NO_COLOR="1")
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


# --- (a) import contracts ------------------------------------------------------------------------


def test_every_package_is_a_root_package_of_the_import_contracts():
    """A new top-level package (tools/, ...) must be listed, or import-linter would not see it."""
    listed = set(_root_packages())
    packages = _package_dirs() - UNLAYERED_PACKAGES
    assert listed == packages, (
        "pyproject.toml [tool.importlinter] root_packages must list every top-level package "
        f"except {sorted(UNLAYERED_PACKAGES)}: missing {sorted(packages - listed)}, "
        f"not a package {sorted(listed - packages)}"
    )


def test_import_contracts_are_kept():
    """lint-imports, exactly as a developer runs it, passes: every contract in pyproject.toml."""
    result = _run([_venv_tool("lint-imports"), "--no-cache", "--no-logo"])
    if result.returncode != 0:
        pytest.fail(
            "import-linter: a contract of pyproject.toml is broken "
            "(importer -> imported (line)):\n" + result.stdout + result.stderr,
            pytrace=False,
        )


# --- (b) no import cycle -------------------------------------------------------------------------


def _script_imports(script: str, modules: set[str], ours: set[str]) -> dict[str, list[str]]:
    """The imports of one top-level script (grimp builds graphs of packages only).

    Every import statement counts, at module level or inside a function, as grimp counts them.

    Args:
        script: top-level module name (flags, train, ...) of a ROOT/<name>.py file.
        modules: every module name of ours (packages' modules and scripts).
        ours: top-level names of our packages and scripts; imports of others are skipped.
    Returns:
        imported module -> its import lines ("l.12: from flags import x").
    """
    path = os.path.join(ROOT, f"{script}.py")
    with open(path, encoding="utf-8") as f:
        source = f.read()
    lines = source.splitlines()
    imports: dict[str, list[str]] = {}
    for node in ast.walk(ast.parse(source, path)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from a.b import c` imports the module a.b.c when there is one, else a.b.
            names = [f"{node.module}.{alias.name}" for alias in node.names]
            names = [name if name in modules else node.module for name in names]
        else:
            continue
        for name in names:
            if name.split(".")[0] not in ours:
                continue
            while name not in modules and "." in name:
                name = name.rsplit(".", 1)[0]
            imports.setdefault(name, []).append(
                f"l.{node.lineno}: {lines[node.lineno - 1].strip()}"
            )
    return imports


def _strongly_connected_components(modules, successors) -> list[list[str]]:
    """Tarjan's algorithm, iterative (the graph is deep enough to worry a recursive one).

    Args:
        modules: iterable of node names.
        successors: function node -> iterable of the nodes it points to.
    Returns:
        The components with more than one node (import cycles), each sorted.
    """
    index, low, on_stack, stack, components = {}, {}, set(), [], []
    counter = 0
    for start in sorted(modules):
        if start in index:
            continue
        work = [(start, iter(sorted(successors(start))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(successors(child)))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return components


def import_graph() -> dict[str, dict[str, list[str]]]:
    """Our import graph: importer -> imported -> import lines, packages and scripts together."""
    import grimp

    packages = sorted(_package_dirs() - UNLAYERED_PACKAGES)
    scripts = _script_modules()
    ours = set(packages) | set(scripts)
    # External packages included: a package's import of a script (flags, ...) appears as an
    # import of the external module of that name, which the scripts' own imports then continue.
    graph = grimp.build_graph(*packages, include_external_packages=True, cache_dir=None)
    modules = {m for m in graph.modules if m.split(".")[0] in ours} | set(scripts)
    imports: dict[str, dict[str, list[str]]] = {m: {} for m in modules}
    for importer in modules - set(scripts):
        for imported in graph.find_modules_directly_imported_by(importer) & modules:
            imports[importer][imported] = [
                f"l.{d['line_number']}: {d['line_contents']}"
                for d in graph.get_import_details(importer=importer, imported=imported)
            ]
    for script in scripts:
        imports[script] = _script_imports(script, modules, ours)
    return imports


def _shortest_cycle(start: str, successors, members: set[str]) -> list[str]:
    """The shortest cycle through `start` inside one strongly connected component (BFS)."""
    parents = {start: None}
    queue = [start]
    for node in queue:
        for child in sorted(successors(node) & members):
            if child == start:
                path = [node]
                while parents[path[-1]] is not None:
                    path.append(parents[path[-1]])
                return [start, *reversed(path[:-1]), start] if len(path) > 1 else [start, start]
            if child not in parents:
                parents[child] = node
                queue.append(child)
    raise AssertionError(f"{start} is on no cycle")


def import_cycles(max_per_component: int = 10) -> list[list[str]]:
    """Import cycles among our modules, each as its imports ("a -> b (l.3: import b)").

    One strongly connected component can hold many cycles; the report lists the shortest cycle
    through each of its modules (distinct ones, at most `max_per_component`), which names the
    imports to cut more clearly than the component's edge list.
    """
    imports = import_graph()

    def successors(module):
        return imports[module].keys()

    cycles = []
    for component in _strongly_connected_components(imports, successors):
        members = set(component)
        seen = set()
        for start in component:
            cycle = _shortest_cycle(start, successors, members)
            key = frozenset(zip(cycle, cycle[1:]))
            if key in seen:
                continue
            seen.add(key)
            cycles.append(
                [f"{a} -> {b} ({'; '.join(imports[a][b])})" for a, b in zip(cycle, cycle[1:])]
            )
            if len(seen) == max_per_component:
                break
    return cycles


def test_no_import_cycle():
    """No two of our modules import each other, even through others or inside functions."""
    cycles = import_cycles()
    report = "\n\n".join("\n".join(edges) for edges in cycles)
    if cycles:
        pytest.fail(f"{len(cycles)} import cycle(s) among our modules:\n{report}", pytrace=False)


def test_cycle_finder_finds_a_cycle():
    """The cycle finder itself: a -> b -> c -> a is one component, d (-> a) is none."""
    edges = {"a": {"b", "d"}, "b": {"c"}, "c": {"a"}, "d": {"e"}, "e": set()}
    assert _strongly_connected_components(edges, edges.__getitem__) == [["a", "b", "c"]]
    assert _shortest_cycle("b", edges.__getitem__, {"a", "b", "c"}) == ["b", "c", "a", "b"]


# --- (c) lint and format -------------------------------------------------------------------------


@pytest.mark.lint
def test_ruff_check():
    """`ruff check` passes over the tree (rules in pyproject.toml [tool.ruff.lint])."""
    result = _run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format=concise", "."]
    )
    if result.returncode != 0:
        pytest.fail(
            "ruff check (most are fixed by `ruff check --fix`):\n" + result.stdout + result.stderr,
            pytrace=False,
        )


@pytest.mark.lint
def test_ruff_format():
    """`ruff format --check` passes: every file is as the formatter writes it."""
    result = _run(
        [
            sys.executable,
            "-m",
            "ruff",
            "format",
            "--check",
            "--no-cache",
            "--output-format=concise",
            ".",
        ]
    )
    if result.returncode != 0:
        pytest.fail(
            "ruff format --check (run `ruff format` on these files):\n"
            + result.stdout
            + result.stderr,
            pytrace=False,
        )
