#!/usr/bin/env python3
"""Measure devbox-gen against the floor (`cp -r`) and the engine people use instead.

    python3 bench/bench.py [--sizes 100,1000,10000] [--binary target/release/devbox-gen]
                           [--work DIR] [--settle SECONDS] [--gojsonnet] [--kapitan]
                           [--runs 3] [--markdown FILE]

For each N, a synthetic config repo is generated (bench/generate.py, fixed seed) in
--work/n<N>/ (default bench/work/), and these are measured as wall time, CPU time (user+sys)
and peak RSS of the process, the best of --runs:

  build (empty out/)        devbox-gen build from nothing: no out/, no build cache
  build (no-op)             a second build: nothing changed, nothing may be written
  build --check             is out/ current? (with the build cache a build left)
  build --check (no cache)  the same on a fresh clone, as CI runs it: every box rendered
  build (one user)          one user file edited, then build
  diff                      one user edited: compile and compare with out/ on disk
  diff (no cache)           the same on a fresh clone
  validate                  parse and check only
  cp -r out/                the floor: copying the result's bytes
  go-jsonnet render         (--gojsonnet) PyPI gojsonnet rendering the same embedded template
                            over the same resolved boxes (`devbox-gen show --input`) to the
                            same files, one evaluation per box (bench/gojsonnet_render.py)
  go-jsonnet eval, ...      (--gojsonnet) its evaluation alone (no YAML, no files) in two
                            processes, one VM per box and one VM per process
  kapitan compile           (--kapitan) `kapitan compile` of a project with one target per
                            user and the same template (bench/kapitan_render.py, which also
                            checks that its output equals ours), with Kapitan's default engine

The cold build and `cp -r` are timed in turn, each after deleting its own previous output,
`sync` and --settle seconds: on ext4 without a journal (these machines), creating files right
after deleting tens of thousands skips over the recently freed inodes one by one, which can
make either side several times slower (up to 10x), whichever happens to land on them.

To measure the program rather than the disk (issue 19), put --work on a tmpfs:

    python3 bench/bench.py --sizes 10000 --work /dev/shm/devbox-bench --binary target/release/devbox-gen

On tmpfs, creating a file costs only CPU (no block allocation, no writeback, no freed inodes to
skip over), so the timings repeat and the cold build's CPU time is the tool's own plus the
kernel's copying of the bytes. There, --settle defaults to 0 (nothing to flush or settle);
elsewhere it defaults to 5 seconds. Each n<N>/ under --work is generated anew (--force), and
needs room for out/ twice, three times with --gojsonnet: tmpfs rounds every file up to a
4 KiB page, so one out/ of 10,000 users takes about 480 MB of memory there.

"out/ files written" counts files of out/ whose inode or mtime changed, for the rows that must
write none. Ratios are printed against our cold build. Peak memory is ru_maxrss of that one
process (os.wait4), so nothing else on the machine is counted. Standard library only, except
gojsonnet, kapitan and PyYAML for the comparisons.
"""

from __future__ import annotations

import argparse
import os
import re
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


def settle(seconds: float) -> None:
    """Flush and wait after deleting a tree, before timing the writing of a new one."""
    os.sync()
    time.sleep(seconds)


def filesystem_of(path: Path) -> str:
    """The type of the filesystem path is on (`tmpfs`, `ext4`), from /proc/self/mounts; "" if unknown."""
    path = path.resolve()
    while not path.exists():
        path = path.parent
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return ""
    best_point, best_type = "", ""
    for line in mounts:
        fields = line.split()
        if len(fields) < 3:
            continue
        # Mount points escape space, tab, newline and backslash in octal: \040 is a space.
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[1])
        inside = path == Path(point) or Path(point) in path.parents
        if inside and len(point) >= len(best_point):
            best_point, best_type = point, fields[2]
    return best_type


def count_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def count_files(path: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(path))


def stamps(path: Path) -> dict[str, tuple[int, int]]:
    """(inode, mtime) of every file under path: what a write would change."""
    found = {}
    for directory, _, files in os.walk(path):
        for name in files:
            st = os.lstat(os.path.join(directory, name))
            found[os.path.join(directory, name)] = (st.st_ino, st.st_mtime_ns)
    return found


def written_by(out: Path, runs: int, prepare, argv: list[str]) -> tuple[tuple[float, float, float], int]:
    """best() of argv, and how many files of out/ the measured runs wrote."""
    before = stamps(out)
    result = best(runs, prepare, argv)
    after = stamps(out)
    return result, sum(1 for path, stamp in after.items() if before.get(path) != stamp) + sum(1 for path in before if path not in after)


def kapitan(python: str, binary: str, repo: Path) -> tuple[float, float, float]:
    """`kapitan compile` of the same users and template, timed alone; then its output is checked."""
    script = str(HERE / "kapitan_render.py")
    work = repo.parent / (repo.name + "-kapitan")
    common = [python, script, "--binary", binary, "--repo", str(repo), "--work", str(work)]
    subprocess.run(common + ["--project-only"], check=True, stdout=subprocess.DEVNULL)
    result = best(1, None, [str(Path(python).parent / "kapitan"), "compile"], cwd=work)
    subprocess.run(common + ["--check-only"], check=True, stdout=subprocess.DEVNULL)
    return result


def gojsonnet_command(python: str, binary: str, repo: Path, out: Path, *modes: str) -> list[str]:
    return [python, str(HERE / "gojsonnet_render.py"), "--binary", binary, "--repo", str(repo), "--out", str(out), *modes]


# go-jsonnet's evaluation alone (no YAML, no files), on both cores, one VM per box as Tanka and
# Kapitan run it, and one VM per process over all its boxes: the honest anchor of issue 19.
GOJSONNET_EVAL_ONLY = {
    "go-jsonnet eval, 2 procs, VM per box": ("--eval-only", "--jobs", "2"),
    "go-jsonnet eval, 2 procs, one VM": ("--eval-only", "--jobs", "2", "--one-vm"),
}


def one_size(args: argparse.Namespace, binary: str, n: int) -> tuple[list[tuple], str]:
    """The table's rows for N users, and the line of issue 19's per-box figures."""
    work = args.work / f"n{n}"
    subprocess.run([sys.executable, str(HERE / "generate.py"), str(n), str(work), "--force"], check=True, stdout=subprocess.DEVNULL)
    out = work / "out"
    cache = work / ".devbox-gen"
    copy = work / "out-copy"
    dg = [binary, "-C", str(work), "--quiet"]

    def clean() -> None:
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(cache, ignore_errors=True)

    def no_cache() -> None:
        shutil.rmtree(cache, ignore_errors=True)

    def clean_copy() -> None:
        shutil.rmtree(copy, ignore_errors=True)

    # The cold build and its floor, interleaved, each after deleting its own previous
    # output and letting the filesystem settle (see --settle).
    colds, copies = [], []
    for _ in range(args.runs):
        clean()
        settle(args.settle)
        colds.append(measure(dg + ["build"])[:3])
        clean_copy()
        settle(args.settle)
        copies.append(measure(["cp", "-r", str(out), str(copy)])[:3])
    clean_copy()
    cold = min(colds)
    files = count_files(out)
    size = count_bytes(out)
    results = {"build (empty out/)": cold, "cp -r out/": min(copies)}
    written = {}
    results["build (no-op)"], written["build (no-op)"] = written_by(out, args.runs, None, dg + ["build"])
    results["build --check"], written["build --check"] = written_by(out, args.runs, None, dg + ["build", "--check"])
    results["build --check (no cache)"], written["build --check (no cache)"] = written_by(
        out, args.runs, no_cache, dg + ["build", "--check"]
    )
    measure(dg + ["build"])  # the cache back
    first_user = min((work / "users").iterdir())
    original = first_user.read_text()

    def edit_one() -> None:
        first_user.write_text(original.replace('email = "', f'email = "e{time.monotonic_ns()}.', 1))

    results["build (one user)"] = best(args.runs, edit_one, dg + ["build"])
    first_user.write_text(original)
    measure(dg + ["build"])
    results["diff"] = best(args.runs, edit_one, dg + ["diff"])
    results["diff (no cache)"] = best(args.runs, lambda: (edit_one(), no_cache()), dg + ["diff"])
    first_user.write_text(original)
    measure(dg + ["build"])
    results["validate"] = best(args.runs, None, dg + ["validate"])
    if args.gojsonnet and n <= args.gojsonnet_max:
        gout = work / "out-gojsonnet"
        results["go-jsonnet render"] = best(
            1, lambda: shutil.rmtree(gout, ignore_errors=True), gojsonnet_command(args.python, binary, work, gout)
        )
        shutil.rmtree(gout, ignore_errors=True)
        for name, modes in GOJSONNET_EVAL_ONLY.items():
            results[name] = best(1, None, gojsonnet_command(args.python, binary, work, gout, *modes))
    if args.kapitan and n <= args.kapitan_max:
        results["kapitan compile"] = kapitan(args.kapitan_python, binary, work)
    print(f"N={n} done ({files} files)", file=sys.stderr)
    floor = results["cp -r out/"][0]
    per_box = (
        f"- {n} users: a cold build takes {cold[1] / n * 1e6:.0f} µs of CPU a box and {cold[0] / floor:.2f} times `cp -r`; "
        f"out/ is {size / n / 1000:.1f} KB a box ({size / 1e6:.1f} MB in {files} files)\n"
    )
    rows = [(n, files, name, wall, cpu, mem, wall / cold[0], written.get(name)) for name, (wall, cpu, mem) in results.items()]
    return rows, per_box


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--binary", default=str(REPO / "target/release/devbox-gen"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--gojsonnet", action="store_true", help="also time go-jsonnet (needs PyPI gojsonnet and PyYAML in --python)")
    parser.add_argument("--gojsonnet-max", type=int, default=1000, help="largest N to render with go-jsonnet (about 40 ms a box)")
    parser.add_argument("--python", default=sys.executable, help="the Python that runs bench/gojsonnet_render.py")
    parser.add_argument("--kapitan", action="store_true", help="also time Kapitan (needs PyPI kapitan and PyYAML in --kapitan-python)")
    parser.add_argument("--kapitan-python", default=sys.executable, help="the Python with kapitan installed")
    parser.add_argument("--kapitan-max", type=int, default=1000, help="largest N to compile with Kapitan (about 65 ms a target)")
    parser.add_argument(
        "--work",
        type=Path,
        default=HERE / "work",
        help="where the generated config repos go (default bench/work; a tmpfs such as /dev/shm/devbox-bench)",
    )
    parser.add_argument(
        "--settle",
        type=float,
        help="seconds to wait after deleting out/ before a timed cold build or copy (default 0 when --work is on tmpfs, else 5)",
    )
    parser.add_argument("--markdown", help="also write the table to this file")
    args = parser.parse_args()
    args.work = args.work.resolve()
    filesystem = filesystem_of(args.work)
    if args.settle is None:
        args.settle = 0.0 if filesystem == "tmpfs" else 5.0
    print(f"work: {args.work} ({filesystem or 'unknown filesystem'}), settle {args.settle:g} s", file=sys.stderr)
    binary = str(Path(args.binary).resolve())
    rows, per_box = [], []
    for n in [int(s) for s in args.sizes.split(",")]:
        size_rows, line = one_size(args, binary, n)
        rows += size_rows
        per_box.append(line)

    header = "| users | files | what | wall s | CPU s | peak MiB | × cold build | out/ files written |\n|---:|---:|---|---:|---:|---:|---:|---:|\n"
    table = header + "".join(
        f"| {n} | {f} | {name} | {w:.3f} | {c:.3f} | {m:.0f} | {r:.2f} | {'' if wr is None else wr} |\n"
        for n, f, name, w, c, m, r, wr in rows
    )
    table += "\n" + "".join(per_box)
    print(table)
    if args.markdown:
        Path(args.markdown).write_text(table)


if __name__ == "__main__":
    main()
