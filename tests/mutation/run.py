"""Plant each mutant of ``mutants.py`` in a scratch copy of the repository and run the tests that
should catch it; say which were killed and which survived.

    .venv/bin/python tests/mutation/run.py                 # every mutant, its own tests (~5 min)
    .venv/bin/python tests/mutation/run.py --list          # the mutants and their tests
    .venv/bin/python tests/mutation/run.py --only auth-malformed-keeps-old pool-429-not-failed-over
    .venv/bin/python tests/mutation/run.py --full          # the whole default suite per mutant (hours)

Run on demand, never in CI (pytest does not collect this folder: no ``test_*.py`` in it). The
working tree is never touched: the repository is copied to a temporary directory (without
``.git``, ``.venv`` and caches) and every mutant is planted there, one at a time, and taken out
again. The copy's ``src`` comes first on ``PYTHONPATH``, ahead of the editable install, which the
runner checks before it starts; server processes the tests spawn inherit it (``serve --http``
does; the SDK's ``stdio_client`` passes only a few variables, so the mutants here are caught
without stdio subprocesses). First the unmutated copy must pass every selected test (the
baseline); then each mutant is *killed* when its tests fail, *survived* when they pass, and
*stale* when its original text is no longer in the file (the code moved: update the mutant).
Exit status 0 when every applicable mutant was killed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mutants import MUTANTS, Mutant

ROOT = Path(__file__).resolve().parents[2]
IGNORED = (".git", ".venv", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".hypothesis")
LINKED = (".ci/node", ".ci/conformance", "bench/.node")
"""Large installed trees the tests read but no mutant touches: linked into the copy, not copied."""
PER_MUTANT_LIMIT = 900
"""Seconds one pytest run may take before it counts as hung (a hang is a kill too: pytest-timeout
turns it into a failure far sooner)."""


@dataclass
class Outcome:
    mutant: Mutant
    verdict: str  # killed, survived, stale
    seconds: float
    detail: str = ""
    failed: tuple[str, ...] = ()
    """The node ids that failed with the mutant in place."""


def make_copy(target: Path) -> Path:
    """The repository at ``target/repo``, without version control, virtualenv or caches."""
    copy = target / "repo"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(*IGNORED, "node_modules"), symlinks=True)
    for relative in LINKED:
        source, link = ROOT / relative, copy / relative
        if source.exists():
            if link.exists():
                shutil.rmtree(link)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(source, target_is_directory=True)
    return copy


def environment(copy: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONPATH"] = os.pathsep.join([str(copy / "src"), *filter(None, [env.get("PYTHONPATH")])])
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # no stale bytecode of a mutant outlives it
    return env


def check_import(copy: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import mcp_ollama; print(mcp_ollama.__file__)"],
        cwd=copy,
        env=environment(copy),
        capture_output=True,
        text=True,
        check=True,
    )
    imported = Path(done.stdout.strip()).resolve()
    if not imported.is_relative_to(copy.resolve()):
        raise SystemExit(f"mutation: the copy's package is not the one imported ({imported}); stopping")
    print(f"mutation: testing the copy at {copy} (mcp_ollama from {imported.parent})", flush=True)


def pytest_argv(tests: list[str], full: bool) -> list[str]:
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rfE", "--no-header"]
    # --full: the default run's options (-n 2, -m 'not slow'), stopping at the first failure. Else
    # every named test runs, in one process, so that each one's verdict is known.
    return [*argv, "-x", "-n", "2"] if full else [*argv, "-n", "0", "-m", "", *tests]


def run_tests(copy: Path, tests: list[str], full: bool) -> tuple[int, str, tuple[str, ...]]:
    try:
        done = subprocess.run(
            pytest_argv(tests, full),
            cwd=copy,
            env=environment(copy),
            capture_output=True,
            text=True,
            timeout=PER_MUTANT_LIMIT,
        )
    except subprocess.TimeoutExpired:
        return -1, f"hung past {PER_MUTANT_LIMIT} s", ()
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    # The short summary's lines ("FAILED tests/...::name - why"), not captured log lines ("ERROR  mcp...").
    failed = tuple(
        line.split()[1]
        for line in lines
        if line.startswith(("FAILED ", "ERROR ")) and line.split()[1].startswith("tests/")
    )
    summary = lines[-1] if lines else done.stderr.strip()[-300:]
    return done.returncode, summary, failed


def plant(copy: Path, mutant: Mutant) -> dict[Path, str] | str:
    """The original text of every file changed, or why the mutant no longer applies."""
    originals: dict[Path, str] = {}
    for edit in mutant.edits:
        path = copy / edit.path
        if not path.exists():
            return f"{edit.path} does not exist"
        text = originals.get(path) or path.read_text(encoding="utf-8")
        originals.setdefault(path, text)
        current = path.read_text(encoding="utf-8")
        count = current.count(edit.old)
        if count != 1:
            for changed, original in originals.items():
                changed.write_text(original, encoding="utf-8")
            return f"{edit.path}: the original text occurs {count} times, not once"
        path.write_text(current.replace(edit.old, edit.new), encoding="utf-8")
    return originals


def revert(originals: dict[Path, str]) -> None:
    for path, text in originals.items():
        path.write_text(text, encoding="utf-8")


def run(mutants: list[Mutant], full: bool, keep: bool) -> list[Outcome]:
    scratch = Path(tempfile.mkdtemp(prefix="mcp-ollama-mutation-"))
    try:
        copy = make_copy(scratch)
        check_import(copy)
        tests = sorted({test for mutant in mutants for test in mutant.tests})
        code, detail, _ = run_tests(copy, tests, full)
        if code != 0:
            raise SystemExit(
                f"mutation: the unmutated copy fails its tests, so nothing can be judged: {detail}"
            )
        print(f"mutation: baseline passes ({detail})", flush=True)
        outcomes: list[Outcome] = []
        for mutant in mutants:
            started = time.monotonic()
            originals = plant(copy, mutant)
            if isinstance(originals, str):
                outcomes.append(Outcome(mutant, "stale", 0.0, originals))
            else:
                try:
                    code, detail, failed = run_tests(copy, list(mutant.tests), full)
                finally:
                    revert(originals)
                verdict = "survived" if code == 0 else "killed"
                outcomes.append(Outcome(mutant, verdict, time.monotonic() - started, detail, failed))
            last = outcomes[-1]
            print(f"  {last.verdict:8} {mutant.name} ({last.seconds:.0f} s) {last.detail}", flush=True)
        return outcomes
    finally:
        if keep:
            print(f"mutation: the copy is kept at {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


def _name(test: str) -> str:
    """A node id without its file: ``test_x[::1]`` from ``tests/test_y.py::test_x[::1]``."""
    return test.split(".py::", 1)[-1]


def _caught(test: str, failed: tuple[str, ...]) -> bool:
    """Whether ``test`` (a node id, perhaps of a parametrised test) failed."""
    return any(f == test or f.startswith(test + "[") for f in failed)


def report(outcomes: list[Outcome]) -> int:
    counts = {
        verdict: sum(o.verdict == verdict for o in outcomes) for verdict in ("killed", "survived", "stale")
    }
    print()
    print("| row | mutant | planted change | verdict | failed with it |")
    print("|---|---|---|---|---|")
    for o in outcomes:
        named = [_name(test) for test in o.failed]
        missed = [_name(t) for t in o.mutant.tests if o.failed and not _caught(t, o.failed)]
        caught = ", ".join(named + [f"(passed: {name})" for name in missed]) or "-"
        print(f"| {o.mutant.row} | {o.mutant.name} | {o.mutant.change} | {o.verdict} | {caught} |")
    print()
    print(
        f"mutation: {len(outcomes)} mutants: {counts['killed']} killed, {counts['survived']} survived, "
        f"{counts['stale']} stale"
    )
    return 0 if counts["survived"] == 0 and counts["stale"] == 0 else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--list", action="store_true", help="list the mutants and their tests, run nothing")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run these mutants only")
    parser.add_argument("--full", action="store_true", help="run the whole default suite for each mutant")
    parser.add_argument("--keep", action="store_true", help="keep the scratch copy (its path is printed)")
    args = parser.parse_args(argv)
    chosen = list(MUTANTS)
    if args.only:
        unknown = sorted(set(args.only) - {m.name for m in MUTANTS})
        if unknown:
            parser.error(f"no such mutant: {', '.join(unknown)}")
        chosen = [m for m in MUTANTS if m.name in args.only]
    if args.list:
        for mutant in chosen:
            print(f"{mutant.name} [{mutant.row}]: {mutant.change}")
            for test in mutant.tests:
                print(f"    {test}")
        return 0
    return report(run(chosen, args.full, args.keep))


if __name__ == "__main__":
    sys.exit(main())
