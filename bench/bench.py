#!/usr/bin/env python3
"""Measure devbox-gen against the floor (`cp -r`) and the engine people use instead.

    python3 bench/bench.py [--sizes 100,1000,10000] [--binary target/release/devbox-gen]
                           [--gojsonnet] [--runs 3] [--markdown FILE]

For each N, a synthetic config repo is generated (bench/generate.py, fixed seed) under
bench/work/, and these are measured as wall time, CPU time (user+sys) and peak RSS of the
process, the best of --runs:

  build (empty out/)   devbox-gen build from nothing
  build (no-op)        a second build: nothing changed, nothing may be written
  build --check        is out/ current?
  build (one user)     one user file edited, then build
  diff                 compile and compare with out/ (when the binary has `diff`)
  validate             parse and check only
  cp -r out/           the floor: copying the result's bytes
  go-jsonnet           (--gojsonnet) PyPI gojsonnet rendering the same embedded template
                       over the same resolved boxes (`devbox-gen resolve`) to the same files

Ratios are printed against our cold build. Peak memory is ru_maxrss of that one process
(os.wait4), so nothing else on the machine is counted. Standard library only, except
gojsonnet and PyYAML for the go-jsonnet comparison.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def measure(argv: list[str], cwd: Path | None = None, env: dict | None = None) -> tuple[float, float, float, int]:
    """Runs argv; returns (wall seconds, cpu seconds, peak MiB, exit code)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode not in (0, 1):
        sys.exit(f"{' '.join(argv)} failed ({proc.returncode}):\n{stderr}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, proc.returncode


def best(runs: int, prepare, argv: list[str], **kw) -> tuple[float, float, float]:
    results = []
    for _ in range(runs):
        if prepare:
            prepare()
        wall, cpu, mem, _ = measure(argv, **kw)
        results.append((wall, cpu, mem))
    return min(results)


def count_files(path: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(path))


def gojsonnet_command(python: str, binary: str, repo: Path, out: Path) -> list[str]:
    return [python, str(HERE / "gojsonnet_render.py"), "--binary", binary, "--repo", str(repo), "--out", str(out)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--binary", default=str(REPO / "target/release/devbox-gen"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--gojsonnet", action="store_true", help="also time go-jsonnet (needs PyPI gojsonnet and PyYAML in --python)")
    parser.add_argument("--gojsonnet-max", type=int, default=1000, help="largest N to render with go-jsonnet (about 40 ms a box)")
    parser.add_argument("--python", default=sys.executable, help="the Python that runs bench/gojsonnet_render.py")
    parser.add_argument("--markdown", help="also write the table to this file")
    args = parser.parse_args()
    binary = str(Path(args.binary).resolve())
    has_diff = subprocess.run([binary, "diff", "--help"], capture_output=True).returncode == 0
    rows = []
    for n in [int(s) for s in args.sizes.split(",")]:
        work = HERE / "work" / f"n{n}"
        subprocess.run([sys.executable, str(HERE / "generate.py"), str(n), str(work), "--force"], check=True, stdout=subprocess.DEVNULL)
        out = work / "out"
        dg = [binary, "-C", str(work), "--quiet"]

        def clean() -> None:
            shutil.rmtree(out, ignore_errors=True)

        cold = best(args.runs, clean, dg + ["build"])
        files = count_files(out)
        results = {"build (empty out/)": cold}
        results["build (no-op)"] = best(args.runs, None, dg + ["build"])
        results["build --check"] = best(args.runs, None, dg + ["build", "--check"])
        first_user = sorted((work / "users").iterdir())[0]
        original = first_user.read_text()

        def edit_one() -> None:
            first_user.write_text(original.replace('email = "', 'email = "e%d.' % time.monotonic_ns(), 1))

        results["build (one user)"] = best(args.runs, edit_one, dg + ["build"])
        first_user.write_text(original)
        measure(dg + ["build"])
        if has_diff:
            results["diff"] = best(args.runs, edit_one, dg + ["diff"])
            first_user.write_text(original)
            measure(dg + ["build"])
        results["validate"] = best(args.runs, None, dg + ["validate"])
        copy = work / "out-copy"

        def clean_copy() -> None:
            shutil.rmtree(copy, ignore_errors=True)

        results["cp -r out/"] = best(args.runs, clean_copy, ["cp", "-r", str(out), str(copy)])
        clean_copy()
        if args.gojsonnet and n <= args.gojsonnet_max:
            gout = work / "out-gojsonnet"
            results["go-jsonnet render"] = best(1, lambda: shutil.rmtree(gout, ignore_errors=True), gojsonnet_command(args.python, binary, work, gout))
        for name, (wall, cpu, mem) in results.items():
            rows.append((n, files, name, wall, cpu, mem, wall / cold[0]))
        print(f"N={n} done ({files} files)", file=sys.stderr)

    header = "| users | files | what | wall s | CPU s | peak MiB | × cold build |\n|---:|---:|---|---:|---:|---:|---:|\n"
    table = header + "".join(f"| {n} | {f} | {name} | {w:.3f} | {c:.3f} | {m:.0f} | {r:.2f} |\n" for n, f, name, w, c, m, r in rows)
    print(table)
    if args.markdown:
        Path(args.markdown).write_text(table)


if __name__ == "__main__":
    main()
