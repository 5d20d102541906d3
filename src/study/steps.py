"""Steps of the study: what each notebook reads and writes, and whether it must run again.

Each notebook names, in its metadata (``study.reads`` and ``study.writes``), the data it reads and
the products it writes, as paths with placeholders (``{raw}``, ``{processed}``, ``{app_db}``,
``{models}``, ``{door_models}``, ``{shared}``, …; see :func:`placeholders`). A step is *up to date*
when the fingerprint of everything that decides its result equals the one recorded after its
last successful run, and its products and report are still as it left them. The fingerprint
covers the notebook's source, the parameters passed to it, the package modules it imports
(followed through the package's own imports), the pinned environment and the content (sha256)
of what it reads. Content, not modification times: touching a file reruns nothing, rebuilding an
upstream product identically reruns nothing downstream. Hashes are remembered by (size, mtime)
so a second run does not read the data again.

Why not DVC: its stages would repeat, in ``dvc.yaml``, the parameters and paths the notebooks
already declare, and bring a git-centred workflow and a large dependency for what is a
comparison of hashes; this module is that comparison.
"""

from __future__ import annotations

import ast
import datetime as dt
import hashlib
import json
import os
import string
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

from study import paths
from study.hashing import sha256_file

PACKAGE = "study"
SKIP_PARTS = {"__pycache__", ".ipynb_checkpoints"}
ENVIRONMENT_LOCK = paths.ROOT / "requirements" / "run.txt"


@dataclass
class Declaration:
    reads: list[str]
    writes: list[str]


def declaration(notebook: Path) -> Declaration:
    """What the notebook says it reads and writes (placeholders unresolved)."""
    meta = nbformat.read(notebook, as_version=4).metadata.get("study", {})
    return Declaration(list(meta.get("reads", [])), list(meta.get("writes", [])))


def placeholders(params: dict) -> dict[str, str | None]:
    """Where the placeholders of ``reads``/``writes`` point for these parameters (the named places
    below, and any non-empty parameter by its name); ``None`` when a place cannot be fingerprinted
    (a database on a server): a step writing there always runs."""
    from study.churn import data, database

    raw_dir = params.get("raw_dir") or None
    scale, seed = params.get("scale", "quick"), int(params.get("seed", 2017))
    try:
        source = data.resolve_source(raw_dir, scale=scale, seed=seed, generate=False)
    except data.RawDataError:  # the twin does not exist yet: step 00 makes it
        source = data.RawSource(data.twin_dir(scale, seed), "twin", scale, seed)

    def sqlite_file(url: str) -> str | None:
        return url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else None

    app = database.app_url(params.get("db_url") or None)
    given = {k: str(v) for k, v in params.items() if isinstance(v, (str, int, float)) and str(v) != ""}
    return {
        **given,
        "raw": str(source.path),
        "processed": str(data.processed_dir(source)),
        "app_db": sqlite_file(app),
        "analytic_db": sqlite_file(database.analytic_url(params.get("analytic_url") or None, app=app)),
        "models": str(paths.MODELS),
        "door_models": str(params.get("models_dir") or paths.DOOR_MODELS),
        "doors_synthetic": str(paths.DOORS_SYNTHETIC),
        "shared": str(paths.SHARED),
    }


def resolve(templates: list[str], where: dict[str, str | None]) -> list[Path | None]:
    """Each template as a path (``None`` when it points to an unfingerprintable place)."""
    out = []
    for t in templates:
        fields = {name for _, name, _, _ in string.Formatter().parse(t) if name}
        unknown = fields - set(where)
        if unknown:
            raise ValueError(f"unknown placeholder {sorted(unknown)} in {t!r}; known: {', '.join(sorted(where))}")
        out.append(None if any(where[f] is None for f in fields) else Path(t.format(**where)))
    return out


def _within(a: str, b: str) -> bool:
    """Whether template ``a`` names ``b`` or something inside it (or ``b`` inside ``a``)."""
    a, b = a.rstrip("/"), b.rstrip("/")
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


def upstream(notebooks: list[Path]) -> dict[Path, set[Path]]:
    """For each notebook, the notebooks among these whose products it reads (by declarations)."""
    decl = {p: declaration(p) for p in notebooks}
    return {
        p: {q for q in notebooks if q != p and any(_within(r, w) for r in decl[p].reads for w in decl[q].writes)}
        for p in notebooks
    }


def order(notebooks: list[Path]) -> list[Path]:
    """The notebooks in an order where each runs after the steps whose products it reads (by
    their declarations), otherwise by name: the EDA, numbered before the feature step, reads the
    per-user table that step writes."""
    after = upstream(notebooks)
    done: list[Path] = []
    left = sorted(notebooks)
    while left:
        ready = [p for p in left if after[p] <= set(done)]
        if not ready:
            raise ValueError("the notebooks' reads and writes form a cycle: " + ", ".join(p.stem for p in left))
        done.append(ready[0])
        left.remove(ready[0])
    return done


def critical_path(notebooks: list[Path], seconds: dict[Path, float]) -> dict[Path, float]:
    """For each notebook, its own expected seconds plus the longest chain of steps that wait for
    it: started first, the longest chains keep both cores busy to the end."""
    after = upstream(notebooks)
    longest: dict[Path, float] = {}
    for p in reversed(order(notebooks)):
        below = [longest[q] for q in notebooks if p in after[q]]
        longest[p] = seconds.get(p, 0.0) + max(below, default=0.0)
    return longest


# ---------------------------------------------------------------------------------------------
# Content hashes.
class Hasher:
    """sha256 of files and folders, remembered by (path, size, mtime_ns)."""

    def __init__(self, memo: dict | None = None):
        self.memo = memo if memo is not None else {}

    def file(self, path: Path) -> str:
        st = path.stat()
        key = str(path.resolve())
        hit = self.memo.get(key)
        if hit and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
            return hit[2]
        digest = sha256_file(path)
        self.memo[key] = [st.st_size, st.st_mtime_ns, digest]
        return digest

    def tree(self, path: Path | None) -> str:
        """A file's hash, a folder's (names and contents of every file below it), or ``absent``."""
        if path is None:
            return "not fingerprinted"
        if path.is_file():
            return self.file(path)
        if not path.is_dir():
            return "absent"
        h = hashlib.sha256()
        for p in sorted(path.rglob("*")):
            if p.is_file() and not SKIP_PARTS.intersection(p.relative_to(path).parts):
                h.update(f"{p.relative_to(path).as_posix()}\0{self.file(p)}\n".encode())
        return h.hexdigest()


def notebook_source(notebook: Path) -> str:
    """sha256 of what the notebook says (cell types, sources, its declarations), not its outputs."""
    nb = nbformat.read(notebook, as_version=4)
    h = hashlib.sha256(json.dumps(nb.metadata.get("study", {}), sort_keys=True).encode())
    for cell in nb.cells:
        h.update(f"{cell.cell_type}\0{cell.source}\0".encode())
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# The package code a notebook uses.
def _imported(tree: ast.AST, package: str, current: str = "") -> set[str]:
    """Dotted names of ``package`` modules (or of names inside them) that ``tree`` imports."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.split(".")[0] == package)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import inside the package
                base = current.split(".")[: -node.level]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.split(".")[0] == package:
                names.add(module)
                names.update(f"{module}.{a.name}" for a in node.names)
    return names


def _module_file(name: str, root: Path) -> Path | None:
    base = root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _code_of_notebook(notebook: Path) -> ast.AST:
    nb = nbformat.read(notebook, as_version=4)
    lines = []
    for cell in nb.cells:
        if cell.cell_type == "code":  # IPython magics and shell escapes are not Python
            lines += [ln for ln in cell.source.splitlines() if not ln.lstrip().startswith(("%", "!"))]
    try:
        return ast.parse("\n".join(lines))
    except SyntaxError:
        return ast.parse("")


def package_files(notebook: Path, root: Path | None = None, package: str | None = None) -> list[Path]:
    """The package's source files the notebook depends on: the modules it imports, the modules
    those import (anywhere in them, lazy imports included), their packages' ``__init__`` and the
    data files beside them (e.g. ``reasons.csv``)."""
    root, package = root or paths.ROOT / "src", package or PACKAGE
    todo, seen, files = list(_imported(_code_of_notebook(notebook), package)), set(), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        for k in range(1, len(parts)):  # importing a.b.c runs a/__init__ and a/b/__init__
            todo.append(".".join(parts[:k]))
        path = _module_file(name, root)
        if path is None:
            continue
        files.add(path)
        current = name + ".__init__" if path.name == "__init__.py" else name
        todo.extend(_imported(ast.parse(path.read_text(encoding="utf-8")), package, current))
    folders = {p.parent for p in files}
    data_files = {p for d in folders for p in d.iterdir() if p.is_file() and p.suffix not in (".py", ".pyc")}
    return sorted(files | data_files)


# ---------------------------------------------------------------------------------------------
# Records of the last successful runs.
@dataclass
class Check:
    up_to_date: bool
    reason: str
    key: str
    record: dict | None = None


class Records:
    """``steps.json``: per step, the fingerprint of its last successful run, the hashes of its
    products and report, and what the index page shows for it."""

    def __init__(self, path: Path):
        self.path = path
        try:
            stored = json.loads(path.read_text())
        except (OSError, ValueError):
            stored = {}
        self.steps: dict = stored.get("steps", {})
        self.hasher = Hasher(stored.get("hashes", {}))

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"steps": self.steps, "hashes": self.hasher.memo}, indent=1, sort_keys=True))
        os.replace(tmp, self.path)

    def fingerprint(self, notebook: Path, passed: dict, where: dict, code_root: Path | None = None) -> tuple[str, dict]:
        """The step's key and what went into it (kept in the record to say why a step reran)."""
        decl = declaration(notebook)
        parts = {
            "notebook": notebook_source(notebook),
            "parameters": hashlib.sha256(json.dumps(passed, sort_keys=True, default=str).encode()).hexdigest(),
            "environment": hashlib.sha256(
                (sys.version.split()[0] + (ENVIRONMENT_LOCK.read_text() if ENVIRONMENT_LOCK.is_file() else "")).encode()
            ).hexdigest(),
            "package code": hashlib.sha256(
                "".join(
                    f"{p.parent.name}/{p.name}\0{self.hasher.file(p)}\n" for p in package_files(notebook, code_root)
                ).encode()
            ).hexdigest(),
        }
        for template, path in zip(decl.reads, resolve(decl.reads, where)):
            parts[f"reads {template}"] = self.hasher.tree(path)
        key = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()
        return key, parts

    def products(self, notebook: Path, where: dict, outputs: list[Path]) -> dict[str, str]:
        decl = declaration(notebook)
        found = {t: self.hasher.tree(p) for t, p in zip(decl.writes, resolve(decl.writes, where))}
        found.update({f"report {p.name}": self.hasher.tree(p) for p in outputs})
        return found

    def check(
        self, notebook: Path, passed: dict, where: dict, outputs: list[Path], code_root: Path | None = None
    ) -> Check:
        key, parts = self.fingerprint(notebook, passed, where, code_root)
        record = self.steps.get(notebook.stem)
        if record is None:
            return Check(False, "never run", key)
        if record["key"] != key:
            changed = [name for name, value in parts.items() if record.get("parts", {}).get(name) != value]
            return Check(False, "changed: " + ", ".join(changed or ["the fingerprint"]), key, record)
        now = self.products(notebook, where, outputs)
        if any(v == "not fingerprinted" for v in now.values()):
            return Check(False, "writes to a database server (not fingerprinted): always runs", key, record)
        moved = [name for name, value in now.items() if record["products"].get(name) != value]
        if moved:
            return Check(False, "product changed or missing: " + ", ".join(moved), key, record)
        return Check(True, "up to date", key, record)

    def remember(
        self, notebook: Path, passed: dict, where: dict, outputs: list[Path], shown: dict, code_root: Path | None = None
    ) -> None:
        """After a successful run: the fingerprint taken now (a step that made its own input, like
        the twin, is then current) and its products."""
        key, parts = self.fingerprint(notebook, passed, where, code_root)
        self.steps[notebook.stem] = {
            "key": key,
            "parts": parts,
            "products": self.products(notebook, where, outputs),
            "finished": dt.datetime.now().isoformat(timespec="seconds"),
            **shown,
        }
        self.save()
