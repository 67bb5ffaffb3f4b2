"""Submissions crafted to break grading, built from an assignment's released notebook.

Everything is derived from the assignment itself (its parts, their functions, the genlib reference
each visible test names, the solution's code), so the cases stay valid as the assignment changes.
Each :class:`Crafted` says what the grader must make of it: the parts whose tests earn nothing
(every other test earns full marks), the status, and the text the student must be shown.

Used by ``tests/test_instructor_grading.py`` and ``benchmarks/bench_autograde.py``.
"""

from __future__ import annotations

import ast
import copy
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from tests.nbgrader_course import ROOT, solution_code, with_answers


@dataclass
class Part:
    """One graded part: its answer cell, its test cells, the function it defines."""

    answer: str
    tests: list[str]
    function: str
    reference: str | None  # "genlib.module.function" named by the visible test, if any


@dataclass
class Crafted:
    """A crafted submission and what grading it must give.

    ``broken`` are indices into :attr:`Assignment.parts` whose tests must earn 0 (``"all"``:
    every test); ``messages`` maps a test cell's grade id, or ``"notes"`` (the grader's notes to
    the student) or ``"message"`` (why it could not be graded), to text the student must see.
    """

    student: str
    content: bytes
    broken: tuple[int, ...] | str = ()
    status: str = "graded"
    messages: dict[str, tuple[str, ...]] = field(default_factory=dict)
    description: str = ""


class Assignment:
    """An assignment's source and release, split into parts."""

    def __init__(self, name: str, root: Path = ROOT) -> None:
        self.name = name
        self.source = nbformat.read(root / "solutions" / name / f"{name}.ipynb", as_version=4)
        self.release = nbformat.read(root / "exercises" / name / f"{name}.ipynb", as_version=4)
        self.points = {
            c.metadata["nbgrader"]["grade_id"]: float(c.metadata["nbgrader"]["points"])
            for c in self.source.cells
            if c.metadata.get("nbgrader", {}).get("grade")
        }
        self.solved = {
            c.metadata["nbgrader"]["grade_id"]: solution_code(c.source)
            for c in self.source.cells
            if c.metadata.get("nbgrader", {}).get("solution")
        }
        self.parts: list[Part] = []
        for cell in self.release.cells:
            meta = cell.metadata.get("nbgrader", {})
            if meta.get("solution"):
                defs = [
                    n.name
                    for n in ast.parse(self.solved[meta["grade_id"]]).body
                    if isinstance(n, ast.FunctionDef)
                ]
                self.parts.append(Part(meta["grade_id"], [], defs[0] if defs else "", None))
            elif meta.get("grade") and self.parts:
                part = self.parts[-1]
                part.tests.append(meta["grade_id"])
                found = re.search(r"\b(genlib(?:\.\w+)+)\.(\w+)\b", cell.source)
                if part.reference is None and found and found.group(2) == part.function:
                    part.reference = f"{found.group(1)}.{found.group(2)}"

    @property
    def total(self) -> float:
        return sum(self.points.values())

    def notebook(self, answers: dict[str, str] | None = None) -> nbformat.NotebookNode:
        """The release with every answer solved, except those in ``answers`` (by grade id)."""
        return with_answers(self.release, {**self.solved, **(answers or {})})

    def expected(self, broken: tuple[int, ...] | str) -> dict[str, float]:
        """Points of each test cell: 0 in the ``broken`` parts (or all), full marks elsewhere."""
        if broken == "all":
            return {gid: 0.0 for gid in self.points}
        zero = {t for i in broken for t in self.parts[i].tests}
        return {gid: 0.0 if gid in zero else pts for gid, pts in self.points.items()}


def _bytes(nb: nbformat.NotebookNode) -> bytes:
    """The notebook's JSON as written, unvalidated (``nbformat.writes`` would repair cell ids)."""
    return json.dumps(nb, indent=1).encode()


def _signature(a: Assignment, i: int) -> str:
    tree = ast.parse(a.solved[a.parts[i].answer])
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef))
    return ast.unparse(fn.args)


def _with_body(a: Assignment, i: int, body: str, before: str = "") -> str:
    """An answer for part ``i``: its function, with the same signature, running ``body``."""
    lines = "\n".join("    " + line for line in body.splitlines())
    return f"{before}def {a.parts[i].function}({_signature(a, i)}):\n{lines}\n"


def _move(nb: nbformat.NotebookNode, grade_id: str, to: int) -> nbformat.NotebookNode:
    nb = copy.deepcopy(nb)
    index = next(
        i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id
    )
    nb.cells.insert(to, nb.cells.pop(index))
    return nb


def _other_release(a: Assignment, root: Path) -> nbformat.NotebookNode:
    """Another assignment's released notebook, or (with none) one made from this release."""
    others = sorted(p for p in (root / "exercises").glob("*/*.ipynb") if p.parent.name != a.name)
    if others:
        return nbformat.read(others[0], as_version=4)
    nb = copy.deepcopy(a.release)
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade_id"):
            meta["grade_id"] = "other_" + meta["grade_id"]
        if cell.cell_type == "markdown":
            cell.source = "Another assignment: " + cell.source
    return nb


def crafted(a: Assignment, root: Path = ROOT) -> list[Crafted]:
    """The crafted submissions of the robustness suite (see each ``description``)."""
    last = len(a.parts) - 1
    p1, p2, p3 = 0, min(1, last), min(2, last)
    cases = [
        Crafted(
            "solved",
            _bytes(a.notebook()),
            description="the solution, for reference",
        ),
        Crafted(
            "infinite_loop",
            _bytes(a.notebook({a.parts[last].answer: _with_body(a, last, "while True:\n    pass")})),
            broken=(last,),
            messages={a.parts[last].tests[0]: ("ran longer than",)},
            description="a function that never returns: its part times out, the others are graded",
        ),
        Crafted(
            "ignores_interrupt",
            _bytes(
                a.notebook(
                    {
                        a.parts[p2].answer: "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                        "while True:\n    pass\n"
                    }
                )
            ),
            broken=(p2,),
            messages={a.parts[p2].answer: ("did not stop when interrupted",)},
            description="a top-level loop that ignores the interrupt: the kernel is restarted",
        ),
        Crafted(
            "exception",
            _bytes(a.notebook({a.parts[p3].answer: _with_body(a, p3, "raise ValueError('my bug')")})),
            broken=(p3,),
            messages={a.parts[p3].tests[0]: ("raised ValueError: my bug",)},
            description="a function that raises",
        ),
        Crafted(
            "syntax_error",
            _bytes(a.notebook({a.parts[p1].answer: f"def {a.parts[p1].function}(:\n    return 0\n"})),
            broken=(p1,),
            messages={a.parts[p1].answer: ("SyntaxError",), a.parts[p1].tests[0]: ("NameError",)},
            description="an answer cell that does not parse",
        ),
        Crafted(
            "edited_tests",
            _bytes(
                a.notebook(
                    {
                        a.parts[p2].answer: _with_body(a, p2, "return None"),
                        **{t: "print('all tests pass')" for t in a.parts[p2].tests},
                    }
                )
            ),
            broken=(p2,),
            messages={"notes": ("Test cells you changed were graded as released",)},
            description="a wrong answer whose test cells were replaced by prints",
        ),
        Crafted(
            "deleted_tests",
            _bytes(
                _delete(a.notebook({a.parts[p3].answer: _with_body(a, p3, "return None")}), a.parts[p3].tests)
            ),
            broken=(p3,),
            messages={"notes": ("Test cells missing from your notebook were put back",)},
            description="a wrong answer whose test cells were deleted",
        ),
        Crafted(
            "moved_tests",
            _bytes(_move(a.notebook(), a.parts[p1].tests[0], 0)),
            messages={"notes": ("out of the assignment's order",)},
            description="a correct notebook whose first test cell was moved to the top",
        ),
        Crafted(
            "duplicate_ids",
            _bytes(_duplicate(a.notebook(), a, p2)),
            messages={"notes": ("more than once",)},
            description="an answer cell pasted twice (a wrong first copy) and clashing cell ids",
        ),
        Crafted(
            "output_flood",
            _bytes(
                a.notebook(
                    {
                        a.parts[last].answer: a.solved[a.parts[last].answer]
                        + "\n\nfor _ in range(20_000):\n    print('flood ' * 100)\n"
                    }
                )
            ),
            messages={a.parts[last].answer: ("more output dropped",)},
            description="a correct notebook that prints 12 MB",
        ),
        Crafted(
            "memory_bomb",
            _bytes(
                a.notebook(
                    {
                        a.parts[p1].answer: _with_body(
                            a,
                            p1,
                            "hog = []\nwhile True:\n    hog.append(torch.ones(2**24))",
                            "import torch\n\n",
                        )
                    }
                )
            ),
            broken=(p1,),
            messages={a.parts[p1].tests[0]: ("allocate memory",)},
            description="a function that allocates until memory runs out",
        ),
        Crafted(
            "kills_python",
            _bytes(a.notebook({a.parts[p3].answer: _with_body(a, p3, "import os\nos._exit(1)")})),
            broken=(p3,),
            messages={a.parts[p3].tests[0]: ("Python stopped while running this cell",)},
            description="a function that ends the kernel process: it is restarted for the rest",
        ),
        Crafted(
            "calls_reference",
            _bytes(a.notebook({a.parts[p1].answer: _reference_answer(a, p1)})),
            broken=(p1,),
            messages={a.parts[p1].tests[0]: ("genlib's own function",)},
            description="genlib's own function handed in as the answer",
        ),
        Crafted(
            "reads_outside",
            _bytes(a.notebook({a.parts[p1].answer: _snoop(a, p1)})),
            broken=(p1,),
            messages={
                a.parts[p1].answer: ("instructor files visible: []",),
                a.parts[p1].tests[0]: ("FileNotFoundError",),
            },
            description="steals the solution by the paths that work under plain nbgrader; writes outside",
        ),
        Crafted(
            "forged_credit",
            _bytes(
                a.notebook(
                    {
                        a.parts[p2].answer: _with_body(
                            a, p2, "import sys\nsys.displayhook(-1.0)\nreturn None"
                        ),
                        a.parts[p3].answer: _wrapped(a, p3, "import sys\nsys.displayhook(1000.0)"),
                    }
                )
            ),
            broken=(p2,),
            description="shows numbers nbgrader would read as partial credit (-1: full marks, 1000: crash)",
        ),
        Crafted(
            "invalid_json",
            b'{"cells": [{"cell_type": "code", "source": "x = 1"',
            broken="all",
            status="not gradable",
            messages={"message": ("not valid notebook JSON",)},
            description="a truncated file",
        ),
        Crafted(
            "empty_file",
            b"",
            broken="all",
            status="not gradable",
            messages={"message": ("the file is empty",)},
            description="a file of 0 bytes",
        ),
        Crafted(
            "no_cells",
            json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}).encode(),
            broken="all",
            messages={"notes": ("no cells",)},
            description="a valid notebook with no cells",
        ),
        Crafted(
            "wrong_assignment",
            _bytes(_other_release(a, root)),
            broken="all",
            messages={"notes": ("another assignment",)},
            description="the notebook of another assignment",
        ),
    ]
    return cases


def _delete(nb: nbformat.NotebookNode, grade_ids: list[str]) -> nbformat.NotebookNode:
    nb = copy.deepcopy(nb)
    nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") not in grade_ids]
    return nb


def _duplicate(nb: nbformat.NotebookNode, a: Assignment, i: int) -> nbformat.NotebookNode:
    """Paste a wrong copy of part ``i``'s answer cell above it; give two cells the same id."""
    nb = copy.deepcopy(nb)
    index = next(
        k
        for k, c in enumerate(nb.cells)
        if c.metadata.get("nbgrader", {}).get("grade_id") == a.parts[i].answer
    )
    wrong = copy.deepcopy(nb.cells[index])
    wrong.source = _with_body(a, i, "return None")
    nb.cells.insert(index, wrong)
    nb.cells[1]["id"] = nb.cells[0]["id"]
    return nb


def _call_args(a: Assignment, i: int) -> str:
    """The arguments of part ``i``'s function, passed on as received."""
    tree = ast.parse(a.solved[a.parts[i].answer])
    args = next(n for n in tree.body if isinstance(n, ast.FunctionDef)).args
    out = [arg.arg for arg in args.posonlyargs + args.args]
    out += [f"*{args.vararg.arg}"] if args.vararg else []
    out += [f"{arg.arg}={arg.arg}" for arg in args.kwonlyargs]
    out += [f"**{args.kwarg.arg}"] if args.kwarg else []
    return ", ".join(out)


def _wrapped(a: Assignment, i: int, before: str) -> str:
    """Part ``i`` solved, but its function runs ``before`` first."""
    name = a.parts[i].function
    real = a.solved[a.parts[i].answer].replace(f"def {name}(", f"def _real_{name}(", 1)
    return real + "\n\n" + _with_body(a, i, f"{before}\nreturn _real_{name}({_call_args(a, i)})")


def _reference_answer(a: Assignment, i: int) -> str:
    part = a.parts[i]
    if part.reference is None:
        return _with_body(a, i, "raise NotImplementedError()")
    module, name = part.reference.rsplit(".", 1)
    return f"import {module}\n\n{part.function} = {module}.{name}\n"


def _snoop(a: Assignment, i: int) -> str:
    """Look for the instructor's files where plain nbgrader puts them relative to the kernel's
    folder (``autograded/<student>/<assignment>/``), write outside the folder, and build the
    answer from the solution notebook if it was found."""
    name, function = a.name, a.parts[i].function
    paths = [
        f"../../../solutions/{name}/{name}.ipynb",
        "../../../gradebook.db",
        f"../../../source/{name}/{name}.ipynb",
    ]
    return (
        "import json, os\n"
        f"_paths = {paths!r}\n"
        "print('instructor files visible:', [p for p in _paths if os.path.exists(p)])\n"
        "with open('../escaped.txt', 'w') as _f:\n"
        "    _f.write('written outside the submission folder')\n\n\n"
        f"def {function}(*args, **kwargs):\n"
        "    cells = json.load(open(_paths[0]))['cells']  # FileNotFoundError: the solution is not there\n"
        f"    code = next(''.join(c['source']) for c in cells if 'def {function}(' in ''.join(c['source']))\n"
        "    scope = {}\n"
        "    exec(code, scope)\n"
        f"    return scope[{function!r}](*args, **kwargs)\n"
    )


def mixed(a: Assignment) -> list[tuple[str, bytes]]:
    """A mix of typical submissions for timing: solved, blank, sample mistakes, broken ones."""
    from tests.submissions import SOLVED, load

    mix = [("solved", _bytes(a.notebook())), ("blank", _bytes(a.release))]
    for sub in load(a.name):
        answers = {k: a.solved.get(k, v) if v == SOLVED else v for k, v in sub.answers.items()}
        mix.append((sub.student, _bytes(with_answers(a.release, {**a.solved, **answers}))))
    by_name = {c.student: c for c in crafted(a)}
    for name in ("exception", "syntax_error", "edited_tests", "invalid_json", "calls_reference"):
        mix.append((name, by_name[name].content))
    return mix
