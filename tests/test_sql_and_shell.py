"""Nothing but a job's `command` reaches a shell, and no value reaches an SQL string.

* SQL: an AST scan of every module under src/queuectl that runs SQL. Every
  argument that becomes SQL text (the first argument of `execute`,
  `executemany`, and of the module's own helpers that pass a parameter on to
  them, found transitively) must be built only from string constants, module
  or class constants that are themselves built that way, local variables
  assigned only such values, placeholder helpers whose every `return` is such
  a value (`_marks(n)`), `"?" * n`, `", ".join(<safe>)`, `<safe>.format(<safe>)`,
  and psycopg's `sql.SQL`/`sql.Identifier`; and a named statement,
  `SQL[name]` / `self.sql[name]`, read from the package's own store/sql/*.sql
  files by `load_queries`, whose `name` is itself such a value (helpers that
  take a statement's name, `_rows("get_job", ...)`, are sinks like those that
  take its text). Runtime values (ids, queue names,
  commands, anything read from a parameter) can only travel as bound
  parameters. `%` formatting into SQL is refused outright. The few pieces the
  scan cannot prove are allowlisted by name below, with the reason.
* Named statements: every statement in store/sql/<dialect>.sql has a name and a
  description, holds no format field (`{...}`) and, on PostgreSQL, no `%` but
  psycopg's placeholders; every name the code asks for exists in each dialect
  it can reach, and every statement is used.
* Shell: ids and queue names cannot hold a shell metacharacter (validation),
  and a job's shell is exactly `/bin/sh -c COMMAND`: the other fields (env
  values, cwd) arrive as data, never as code.
"""

from __future__ import annotations

import ast
import json
import re
import string
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "queuectl"

#: Loop variables whose values the scan cannot follow, with the only loop they
#: may come from and why that is safe. A new entry needs as good a reason.
ALLOWED = {
    # sqlite.py, postgres.py: `for number, script in migrations(...)`: the
    # package's own migration files (store/migrations/*/*.sql) ...
    "script": "migrations",
    # ... and `for stmt in _statements(script)`: their statements.
    "stmt": "_statements",
}

#: Functions whose every return is SQL the package ships (not a runtime
#: value): the named-statement loader reads store/sql/<dialect>.sql, which
#: test_named_statements checks.
LOADERS = {"load_queries"}

SINKS = {"execute": 0, "executemany": 0, "executescript": 0}
PSYCOPG_SAFE = {"SQL", "Identifier", "Literal", "Placeholder"}
SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.GeneratorExp, ast.ListComp,
          ast.SetComp, ast.DictComp)


DRIVERS = ("sqlite3", "psycopg")


def _drivers(tree: ast.Module) -> set:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module.split(".")[0])
    return found & set(DRIVERS)


def _modules() -> list[Path]:
    """The modules that import a database driver (the only ones that can run
    SQL), and those of the storage package, whose core runs its dialect's
    named statements through the dialect's helpers."""
    return sorted(p for p in SRC.rglob("*.py") if _drivers(ast.parse(p.read_text()))
                  or p.parent == SRC / "store")


class Scan:
    """The SQL-safety analysis of one module."""

    def __init__(self, tree: ast.Module, name: str, sinks: "dict | None" = None):
        self.tree, self.name = tree, name
        self.problems: list[str] = []
        self.consts: dict[str, list[ast.expr]] = {}     # module and class constants
        self.funcs: dict[str, ast.FunctionDef] = {}
        self.defs: dict[str, list] = {}          # every def of a name (methods of any class)
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self.funcs.setdefault(node.name, node)
                self.defs.setdefault(node.name, []).append(node)
        for node in tree.body + [n for c in tree.body if isinstance(c, ast.ClassDef)
                                 for n in c.body]:
            if isinstance(node, ast.Assign):
                for t in node.targets:
                    if isinstance(t, ast.Name):
                        self.consts.setdefault(t.id, []).append(node.value)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) \
                    and node.value is not None:
                self.consts.setdefault(node.target.id, []).append(node.value)
        self.parents = {id(c): n for n in ast.walk(tree) for c in ast.iter_child_nodes(n)}
        self.sinks = dict(SINKS if sinks is None else sinks)
        self._find_helpers()

    # -------------------------------------------------- helpers that run SQL
    def _find_helpers(self) -> None:
        """Functions passing one of their parameters on as SQL are sinks too."""
        changed = True
        while changed:
            changed = False
            for fname, f in self.funcs.items():
                params = [a.arg for a in f.args.args]
                if params and params[0] == "self":
                    params = params[1:]
                for call in self._calls(f):
                    arg = self._sql_arg(call)
                    # SQL[name] / self.sql[name]: the statement is chosen by `name`.
                    if isinstance(arg, ast.Subscript) and self._is_table(arg.value):
                        arg = arg.slice
                    if isinstance(arg, ast.Name) and arg.id in params and fname not in self.sinks:
                        self.sinks[fname] = params.index(arg.id)
                        changed = True

    def _is_table(self, e) -> bool:
        """Is `e` a table of named statements (SQL, self.sql)?"""
        name = e.attr if isinstance(e, ast.Attribute) else e.id if isinstance(e, ast.Name) \
            else None
        return name in ("SQL", "sql")

    @staticmethod
    def _callee(call: ast.Call) -> "str | None":
        f = call.func
        return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None

    def _sql_arg(self, call: ast.Call) -> "ast.expr | None":
        name = self._callee(call)
        if name not in self.sinks:
            return None
        i = self.sinks[name]
        args = call.args
        # self._retry_busy(c.execute, "BEGIN IMMEDIATE"): the SQL follows the sink.
        if args and isinstance(args[0], ast.Attribute) and args[0].attr in self.sinks:
            args = args[1:]
        return args[i] if len(args) > i else None

    @staticmethod
    def _calls(node) -> list[ast.Call]:
        return [n for n in ast.walk(node) if isinstance(n, ast.Call)]

    # -------------------------------------------------- the check
    def run(self) -> list[str]:
        for call in self._calls(self.tree):
            name = self._callee(call)
            if name == "_retry_busy" and call.args and isinstance(call.args[0], ast.Attribute) \
                    and call.args[0].attr in self.sinks:
                arg = call.args[1] if len(call.args) > 1 else None
            elif name in self.sinks:
                arg = self._sql_arg(call)
            else:
                continue
            if arg is None:
                continue
            func = self._enclosing(call)
            if not self.safe(arg, func, set()):
                self.problems.append(f"{self.name}:{call.lineno}: SQL built from a value the "
                                     f"scan cannot prove constant: {ast.unparse(arg)[:160]}")
        return self.problems

    def _enclosing(self, node):
        """The function, lambda or comprehension `node` is in (None: the module)."""
        node = self.parents.get(id(node))
        while node is not None and not isinstance(node, SCOPES):
            node = self.parents.get(id(node))
        return node

    def _assignments(self, func, name: str) -> "list[ast.expr] | None":
        """Every value assigned to local `name` in `func` (None: it is a parameter)."""
        values: list = []
        for node in ast.walk(func):
            if isinstance(node, ast.Assign):
                for t in node.targets:
                    values += self._bind(t, node.value, name)
            elif isinstance(node, (ast.AugAssign, ast.AnnAssign)) and \
                    isinstance(node.target, ast.Name) and node.target.id == name and node.value:
                values.append(node.value)
            elif isinstance(node, ast.NamedExpr) and node.target.id == name:
                values.append(node.value)
            elif isinstance(node, (ast.For, ast.comprehension)):
                if any(isinstance(n, ast.Name) and n.id == name for n in ast.walk(node.target)):
                    values.append(("iter", node.iter))
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                    isinstance(node.func.value, ast.Name) and node.func.value.id == name and \
                    node.func.attr in ("append", "extend", "insert"):
                values += node.args[-1:]
        return values

    @staticmethod
    def _bind(target, value, name) -> list:
        if isinstance(target, ast.Name):
            return [value] if target.id == name else []
        if isinstance(target, (ast.Tuple, ast.List)):
            out = []
            for i, elt in enumerate(target.elts):
                if isinstance(elt, ast.Name) and elt.id == name:
                    if isinstance(value, (ast.Tuple, ast.List)) and len(value.elts) == len(target.elts):
                        out.append(value.elts[i])
                    else:
                        out.append(("item", value, i))
            return out
        return []

    def safe(self, e, func, seen: set) -> bool:
        if isinstance(e, tuple):                      # ("iter", x) / ("item", value, i)
            if e[0] == "iter":
                return self.safe(e[1], func, seen)
            value, i = e[1], e[2]
            if isinstance(value, ast.IfExp):
                return self.safe(("item", value.body, i), func, seen) and \
                    self.safe(("item", value.orelse, i), func, seen)
            if isinstance(value, (ast.Tuple, ast.List)):
                return len(value.elts) > i and self.safe(value.elts[i], func, seen)
            return self._returns_safe(value, func, seen, index=i)
        if isinstance(e, ast.Constant):
            return isinstance(e.value, (str, int, float, bool, type(None)))
        if isinstance(e, ast.JoinedStr):
            return all(self.safe(v.value, func, seen) for v in e.values
                       if isinstance(v, ast.FormattedValue))
        if isinstance(e, ast.BinOp):
            if isinstance(e.op, ast.Add):
                return self.safe(e.left, func, seen) and self.safe(e.right, func, seen)
            if isinstance(e.op, ast.Mult):           # "?" * n, ["%s"] * n
                return self.safe(e.left, func, seen)
            return False                              # % formatting: never
        if isinstance(e, ast.IfExp):
            return self.safe(e.body, func, seen) and self.safe(e.orelse, func, seen)
        if isinstance(e, (ast.Tuple, ast.List, ast.Set)):
            return all(self.safe(x, func, seen) for x in e.elts)
        if isinstance(e, ast.Dict):                   # {name: statement name, ...}
            return all(self.safe(x, func, seen) for x in e.values)
        if isinstance(e, (ast.GeneratorExp, ast.ListComp, ast.SetComp)):
            return self.safe(e.elt, e, seen)
        if isinstance(e, ast.Subscript):
            if self._is_table(e.value):               # a named statement: by a safe name
                # (`self.sql`: the store's table, declared in store/reads.py and
                # filled from the package's .sql files, which
                # test_named_statements checks; a module's own SQL table must
                # be a constant here.)
                table_ok = (isinstance(e.value, ast.Attribute) and e.value.attr == "sql"
                            and isinstance(e.value.value, ast.Name)
                            and e.value.value.id == "self") or self.safe(e.value, func, seen)
                return table_ok and self.safe(e.slice, func, seen)
            return self.safe(e.value, func, seen)
        if isinstance(e, ast.Name):
            return self._name_safe(e.id, func, seen)
        if isinstance(e, ast.Attribute):
            # self.X / cls.X / module.X: a class or module constant.
            return e.attr in self.consts and self._const_safe(e.attr, seen)
        if isinstance(e, ast.Call):
            return self._call_safe(e, func, seen)
        return False

    def _name_safe(self, name, func, seen) -> bool:
        if name in ALLOWED and func is not None:
            values = self._assignments(func, name)
            if values and all(isinstance(v, tuple) and v[0] == "iter" and
                              isinstance(v[1], ast.Call) and self._callee(v[1]) == ALLOWED[name]
                              for v in values):
                return True
        key = (id(func), name)
        if key in seen:
            return True                   # a cycle adds no new values
        seen = seen | {key}
        scope = func
        while scope is not None:
            if isinstance(scope, (ast.GeneratorExp, ast.ListComp, ast.SetComp, ast.DictComp)):
                for gen in scope.generators:
                    if any(isinstance(n, ast.Name) and n.id == name for n in ast.walk(gen.target)):
                        return self.safe(gen.iter, self._enclosing(scope), seen)
                scope = self._enclosing(scope)
                continue
            params = [a.arg for a in scope.args.args + scope.args.kwonlyargs]
            if not isinstance(scope, ast.Lambda):
                values = self._assignments(scope, name)
                if values:
                    return all(self.safe(v, scope, seen) for v in values)
            if name in params:
                if ("param", id(scope), name) in seen:
                    return True           # given a safe value by the call being checked
                fname = getattr(scope, "name", None)
                # The SQL parameter of a helper that runs it: its callers are checked.
                offset = 1 if params and params[0] == "self" else 0
                return fname in self.sinks and len(params) > self.sinks[fname] + offset \
                    and params[self.sinks[fname] + offset] == name
            scope = self._enclosing(scope)
        return name in self.consts and self._const_safe(name, seen)

    def _const_safe(self, name, seen) -> bool:
        key = ("const", name)
        if key in seen:
            return True
        return all(self.safe(v, None, seen | {key}) for v in self.consts[name])

    def _returns_safe(self, call, func, seen, index=None) -> bool:
        """Is every value `call` can return (its element `index`) safe? For
        module functions and for methods called on self (every def of the name)."""
        if not isinstance(call, ast.Call):
            return False
        f = call.func
        if isinstance(f, ast.Name):
            defs = [self.funcs[f.id]] if f.id in self.funcs else []
        elif isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and \
                f.value.id in ("self", "cls"):
            defs = self.defs.get(f.attr, [])
        else:
            defs = []
        if not defs:
            return False
        for d in defs:
            # Parameters given safe values at this call are safe inside.
            params = [a.arg for a in d.args.args]
            if isinstance(f, ast.Attribute) and params[:1] in (["self"], ["cls"]):
                params = params[1:]
            bound = {("param", id(d), params[i]) for i, a in enumerate(call.args)
                     if i < len(params) and self.safe(a, func, seen)}
            bound |= {("param", id(d), k.arg) for k in call.keywords
                      if k.arg and self.safe(k.value, func, seen)}
            key = ("returns", id(d), index, frozenset(bound))
            if key in seen:
                continue
            inner = seen | {key} | bound
            rets = [r.value for r in ast.walk(d) if isinstance(r, ast.Return) and r.value is not None]
            if not rets:
                return False
            for r in rets:
                if index is not None:
                    if not (isinstance(r, ast.Tuple) and len(r.elts) > index):
                        return False
                    r = r.elts[index]
                if not self.safe(r, d, inner):
                    return False
        return True

    def _call_safe(self, e: ast.Call, func, seen) -> bool:
        f = e.func
        args = list(e.args) + [k.value for k in e.keywords]
        if isinstance(f, ast.Attribute):
            if f.attr == "join":             # sep.join(parts)
                return self.safe(f.value, func, seen) and all(self.safe(a, func, seen) for a in args)
            if f.attr == "format":           # template.format(...)
                return self.safe(f.value, func, seen) and all(self.safe(a, func, seen) for a in args)
            if f.attr in ("strip", "lower", "upper", "replace", "split"):
                return self.safe(f.value, func, seen) and all(self.safe(a, func, seen) for a in args)
            if f.attr in PSYCOPG_SAFE:       # psycopg.sql: quotes what it composes
                return True
            return self._returns_safe(e, func, seen)      # self.helper(...)
        if isinstance(f, ast.Name):
            if f.id in ("len", "range", "int", "bool"):
                return True                  # numbers (repetition counts), flags
            if f.id in LOADERS:
                return all(isinstance(a, ast.Constant) for a in args)   # a dialect's file
            return self._returns_safe(e, func, seen)
        return False


def scan_source(source: str, name: str = "<test>") -> list[str]:
    return Scan(ast.parse(source), name).run()


def test_every_sql_statement_in_the_package_is_parameterised():
    modules = _modules()
    names = {p.relative_to(SRC).as_posix() for p in modules}
    assert {"store/sqlite.py", "store/postgres.py"} <= names, names
    # The storage seam: nothing outside store/ (the CLI, the worker, the
    # dashboard) talks to a database driver, so this is all the SQL there is.
    assert all(n.startswith("store/") for n in names), names
    problems = []
    checked = 0
    trees = {p: ast.parse(p.read_text()) for p in modules}
    # Helpers found in one module are sinks in all: the core calls the
    # dialects' `_rows(name, ...)`.
    sinks: dict = dict(SINKS)
    while True:
        found = dict(sinks)
        for path, tree in trees.items():
            found.update(Scan(tree, path.name, sinks).sinks)
        if found == sinks:
            break
        sinks = found
    for path, tree in trees.items():
        scan = Scan(tree, path.relative_to(SRC).as_posix(), sinks)
        problems += scan.run()
        checked += sum(1 for c in scan._calls(scan.tree) if scan._callee(c) in scan.sinks)
    assert checked > 100, f"only {checked} SQL calls found: is the scan still seeing them?"
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------- named statements

STORE = SRC / "store"
#: Which statement files each module's names must be found in.
DIALECTS = {"sqlite.py": ("sqlite",), "postgres.py": ("postgres",),
            "core.py": ("sqlite", "postgres"), "reads.py": ("sqlite", "postgres"),
            "sqlite_conn.py": ("sqlite",)}


def _statement_names(tree: ast.Module) -> set:
    """Every string constant in a module (statement names among them)."""
    return {n.value for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def _asked_for(tree: ast.Module, sinks: dict) -> set:
    """The statement names a module asks for: the constant keys of SQL[...]
    and self.sql[...], and the constant names given to named-statement
    helpers (through an `if` or a module dict of names, too)."""
    scan = Scan(tree, "<names>", sinks)
    out: set = set()

    def names(e) -> None:
        if isinstance(e, ast.Constant) and isinstance(e.value, str):
            out.add(e.value)
        elif isinstance(e, ast.IfExp):
            names(e.body), names(e.orelse)
        elif isinstance(e, ast.Subscript) and isinstance(e.value, ast.Name) and \
                e.value.id in scan.consts:
            for v in scan.consts[e.value.id]:
                if isinstance(v, ast.Dict):
                    for x in v.values:
                        names(x)

    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and scan._is_table(node.value):
            names(node.slice)
        elif isinstance(node, ast.Call) and scan._callee(node) in sinks \
                and scan._callee(node) not in SINKS:
            names(scan._sql_arg(node))
    return out


def test_named_statements():
    from queuectl.store.queries import FOLDER, parse
    files = {d: parse((Path(FOLDER) / f"{d}.sql").read_text(), d)
             for d in ("sqlite", "postgres")}
    for dialect, queries in files.items():
        assert len(queries) > 50, dialect
        for q in queries:
            assert q.description, (dialect, q.name)
            assert "{" not in q.sql and "}" not in q.sql, (dialect, q.name, "format field")
            if dialect == "postgres":
                stripped = re.sub(r"%\([a-z_]+\)s", "", q.sql.replace("%s", ""))
                assert "%" not in stripped, (dialect, q.name, "a % that is no placeholder")
            else:
                assert "%" not in q.sql, (dialect, q.name)
    trees = {name: ast.parse((STORE / name).read_text()) for name in DIALECTS}
    sinks: dict = dict(SINKS)
    for _ in range(3):
        for name, tree in trees.items():
            sinks.update(Scan(tree, name, sinks).sinks)
    used = {d: set() for d in files}
    for name, tree in trees.items():
        asked = _asked_for(tree, sinks)
        assert len(asked) > 10, (name, asked)
        for dialect in DIALECTS[name]:
            known = {q.name for q in files[dialect]}
            assert asked <= known, (name, dialect, sorted(asked - known))
            used[dialect] |= _statement_names(tree) & known
    for dialect, queries in files.items():
        unused = {q.name for q in queries} - used[dialect]
        assert not unused, (dialect, "statements nothing runs", sorted(unused))


def test_the_statement_parser_refuses_what_it_cannot_name():
    from queuectl.store.queries import parse
    assert [(q.name, q.description, q.sql) for q in parse(
        "-- about\n-- name: a\n-- description: One.\nSELECT 1;\n\n-- name: b\n"
        "-- description: Two.\nSELECT\n  2;\n")] == [("a", "One.", "SELECT 1"),
                                                      ("b", "Two.", "SELECT\n  2")]
    for text in ("SELECT 1;\n", "-- name: a\nSELECT 1;\n",
                 "-- name: a\n-- description: x\n\n",
                 "-- name: a\n-- description: x\nSELECT 1;\n"
                 "-- name: a\n-- description: y\nSELECT 2;"):
        with pytest.raises(ValueError):
            parse(text)


@pytest.mark.parametrize("code", [
    'def f(c, job_id):\n    c.execute(f"SELECT * FROM jobs WHERE id = \'{job_id}\'")',
    'def f(c, q):\n    c.execute("SELECT * FROM jobs WHERE queue = \'%s\'" % q)',
    'def f(c, q):\n    c.execute("SELECT * FROM jobs WHERE queue = \'{}\'".format(q))',
    'def f(c, q):\n    sql = "SELECT 1 WHERE " + q\n    c.execute(sql)',
    'def f(c, q):\n    parts = ["a = 1"]\n    parts.append(q)\n    c.execute(" AND ".join(parts))',
    'class S:\n    def _rows(self, sql, p=()):\n        return self.c.execute(sql, p)\n'
    '    def g(self, name):\n        return self._rows(f"SELECT {name}")',
    'def _where(x):\n    return f"id = {x}", ()\ndef f(c, x):\n    w, p = _where(x)\n'
    '    c.execute("SELECT 1 WHERE " + w, p)',
    'def f(c, ids):\n    c.executemany(f"DELETE FROM jobs WHERE id IN ({ids})", [])',
    # a helper that is safe with constants is not with a runtime value
    'def _eq(col):\n    return f"{col} = ?"\ndef f(c, job):\n    c.execute(_eq(job.id), ())',
    # an allowlisted name from anywhere but its one loop
    'def f(c, job):\n    script = job.command\n    c.execute(script)',
    'def f(c, jobs):\n    for stmt in jobs:\n        c.execute(stmt)',
    # a named statement chosen by a runtime value, or a table not loaded from the package
    'SQL = load_queries("sqlite")\ndef f(c, job):\n    c.execute(SQL[job.kind], ())',
    'SQL = load_queries("sqlite")\nclass S:\n    def _rows(self, name, p=()):\n'
    '        return self.c.execute(SQL[name], p)\n    def g(self, job):\n'
    '        return self._rows(job.command)',
    'SQL = json.load(open("q.json"))\ndef f(c):\n    c.execute(SQL["get_job"], ())',
])
def test_the_scan_catches_values_formatted_into_sql(code):
    assert scan_source(code), f"not caught:\n{code}"


@pytest.mark.parametrize("code", [
    'COLS = "id, state"\ndef f(c, i):\n    c.execute(f"SELECT {COLS} FROM jobs WHERE id = ?", (i,))',
    'def _marks(n):\n    return ",".join("?" * n)\n'
    'def f(c, ids):\n    c.execute(f"SELECT 1 WHERE id IN ({_marks(len(ids))})", ids)',
    'def f(c, state):\n    where = "WHERE state = ?" if state else ""\n'
    '    c.execute(f"SELECT 1 FROM jobs {where}", (state,))',
    'class S:\n    def _rows(self, sql, p=()):\n        return self.c.execute(sql, p)\n'
    '    def g(self, x):\n        return self._rows("SELECT 1 WHERE x = %s", (x,))',
    'def _eq(col):\n    return f"{col} = ?"\ndef f(c, x):\n    c.execute(_eq("id"), (x,))',
    'def f(c):\n    for number, script in migrations("sqlite"):\n'
    '        for stmt in _statements(script):\n            c.execute(stmt)',
    'SQL = load_queries("sqlite")\nNAMES = {True: "a", False: "b"}\nclass S:\n'
    '    def _rows(self, name, p=()):\n        return self.c.execute(SQL[name], p)\n'
    '    def g(self, x):\n        return self._rows(NAMES[bool(x)], {"x": x})\n'
    '    def h(self, x):\n        return self._rows("a" if x else "b", (x,))',
])
def test_the_scan_accepts_constant_sql_with_bound_parameters(code):
    assert scan_source(code) == []


# ---------------------------------------------------------------- the shell

ID_CHARS = set(string.ascii_letters + string.digits + "._:-")
SHELL_SPECIAL = set(" \t\n\r\x00;&|<>()$`\\\"'*?[]#~=%!{},^@+/")


def test_ids_and_queue_names_cannot_hold_a_shell_metacharacter():
    from queuectl.model import valid_id
    from queuectl.payload import validate_payload
    from queuectl.errors import InvalidInput
    assert not ID_CHARS & SHELL_SPECIAL
    accepted = {chr(i) for i in range(0x3000) if valid_id(chr(i))}
    assert accepted == ID_CHARS, sorted(accepted ^ ID_CHARS)
    for ch in sorted(SHELL_SPECIAL) + ["\u2028", "\u00a0", "\uff1b"]:
        for field in ("id", "queue"):
            with pytest.raises(InvalidInput):
                validate_payload({"command": "true", field: f"a{ch}b"})
        with pytest.raises(InvalidInput):
            validate_payload({"command": "true", "after": [f"a{ch}b"]})


@pytest.mark.backends("sqlite")     # the runner, the same on every backend
def test_only_the_command_reaches_the_shell(cli, tmp_path):
    """The job's shell is exactly `/bin/sh -c COMMAND`; env values and the cwd
    path, full of shell syntax, arrive as data and run nothing."""
    evil = ("$(touch pwned1); `touch pwned2` | touch pwned3 && touch pwned4 "
            "'; touch pwned5; '\"; touch pwned6\n touch pwned7")
    workdir = tmp_path / "d;touch pwned8 $(touch pwned9) `touch pwned10`"
    workdir.mkdir()
    command = "tr '\\0' '\\n' < /proc/$$/cmdline; printf '%s|' \"$EVIL\"; pwd"
    cli.enqueue(id="plain", command=command, env={"EVIL": evil}, cwd=str(workdir),
                queue="q.1:x-y_z")
    cli.ok("worker", "start", "--burst", "--quiet", timeout=60)
    job = cli.job("plain")
    assert job["state"] == "completed", job
    argv, rest = job["output"].split("\n", 3)[:3], job["output"].split("\n", 3)[3]
    assert argv == ["/bin/sh", "-c", command]
    assert rest == f"{evil}|{workdir}\n"
    assert not [p for p in tmp_path.rglob("pwned*")], "something ran"
