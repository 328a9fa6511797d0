"""Updates per second of R runs trained as one program (deep/algorithms/batched.py), eager and compiled, against
R separate runs, in one run.

    OMP_NUM_THREADS=1 python benchmarks/bench_batched_runs.py        # CPU: spacql cfcql matd3-bc, R = 1 5 20 50
    python benchmarks/bench_batched_runs.py --device cuda            # a GPU: the same rows (CUDA graphs when compiled)
    python benchmarks/bench_batched_runs.py --algos omar icql-qs --runs 1 5 --modes eager --updates 5

For each method of ``--algos`` (the batchable methods of deep/algorithms/methods.py: the value family
spacql, icql-qs, cfcql, macql, ... and omar, matd3-bc; iql is refused) and each R of ``--runs``, with CN's
settings (``METHODS[algo].defaults("cn", "medium")``), learners built after ``torch.manual_seed(seed)`` for
seeds 0..R-1, each run drawing its minibatch of ``learner.batch_rows`` rows on the device from a synthetic
dataset of CN's shapes with its own ``torch.Generator``:

- eager: the seconds of one ``BatchedRuns.update`` of all R runs together;
- compiled: the same after ``BatchedRuns.compile`` (``"reduce-overhead"``, i.e. CUDA graphs, on a GPU; the
  default mode on a CPU). Its compile seconds are printed apart: the warm-up's time minus its updates at
  the steady rate (the first update compiles the critic's gradients, the first actor step the actor's),
  cold: the compile caches are off (``torch.compiler.config.force_disable_caches``), so that an earlier
  run's on-disk cache does not shorten them;
- separate: R single-run updates (``learner.update``, eager: the trainer's path without ``--compile``),
  the baseline of both rows. For R above ``--separate-runs`` (5) only 5 learners are timed and their time
  is scaled by R / 5 (the runs are independent: one run's time does not depend on R); the ``separate``
  column says how many were timed ("5/20").

Every measurement first runs ``policy_delay`` warm-up updates (so that the critic and the actor steps both
ran, and compiled), then times ``--updates`` updates (the mean; the batched and the separate timings sit
at the same updates of the schedule, so with the default 3 the value family's mean holds one actor step
in 3 updates where training has one in 5: pass a multiple of policy_delay for the training mix).
The columns: ``s/update`` the seconds of one batched update of all R runs; ``upd/s/run`` = 1 / s/update,
the updates per second each run makes; ``run-upd/s`` = R / s/update, the run-updates per second of the
device (per GPU-second on a GPU, per second of the process's threads on a CPU); ``ratio`` = separate /
batched (above 1: batching pays); ``peak MiB`` the memory the batched measurement (building, compiling,
warm-up and timing) took above what was in use before it: on CUDA ``torch.cuda.max_memory_allocated``
after ``reset_peak_memory_stats`` minus the memory allocated before; on a CPU the growth of the process's
peak resident set (Linux: ``VmHWM`` of /proc/self/status, reset through /proc/self/clear_refs after
``malloc_trim`` hands the freed heap back; "-" where that is not available).

Memory guard: before a method's rows, one eager batched run (R = 1, ``policy_delay`` updates) is measured
the same way, and an R is skipped ("skipped: needs ~X GiB > --max-gib Y") where R times that exceeds
``--max-gib`` (default 12 on a CPU, the device's free memory on CUDA). SPaCQL's penalty alone holds
10 critics x 1024 rows x 3 agents x 10 samples x 64 hidden floats (79 MB) per activation and run.

On a CPU the update is compute-bound, so little gain is expected (and the separate runs use the cache-blocked
penalty, which ``vmap`` does not trace, while the batched one evaluates whole tensors); the goal is a GPU,
where one run of these small MLPs leaves most of the chip idle.
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import gc
import os
import sys
import time
import warnings

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch
from bench_offline_updates import synthetic_data  # the sibling script (this folder is on sys.path when run)

from deep.algorithms.batched import BATCHABLE, BatchedRuns
from deep.algorithms.learner import keep_freed_memory
from deep.algorithms.methods import METHODS
from deep.envs.tasks import task_spec

DATASET_ROWS = 20_000
BATCHABLE_METHODS = [name for name, method in METHODS.items() if issubclass(method.learner, BATCHABLE)]
GIB = 2**30
MIB = 2**20


def make_learners(algo: str, seeds: range, device) -> list:
    """One learner per seed, CN's medium settings, each built after ``torch.manual_seed(seed)``."""
    spec, method = task_spec("cn"), METHODS[algo]
    values = method.defaults("cn", "medium")
    values.pop("updates")
    learners = []
    for seed in seeds:
        torch.manual_seed(seed)
        settings = method.settings(algo=algo, **values)
        learners.append(method.learner(settings, spec.n_agents, spec.obs_dim, spec.act_dims, spec.state_dim, device))
    return learners


def make_generators(runs: int, device) -> list[torch.Generator]:
    return [torch.Generator(device=device).manual_seed(100 + r) for r in range(runs)]


def minibatch(data: dict[str, torch.Tensor], rows: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    index = torch.randint(DATASET_ROWS, (rows,), generator=generator, device=generator.device)
    return {key: value.index_select(0, index) for key, value in data.items()}


def synchronize(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def seconds(step, updates: int, device) -> float:
    """Wall seconds of ``updates`` calls of ``step`` (synchronized at the ends)."""
    synchronize(device)
    start = time.perf_counter()
    for _ in range(updates):
        step()
    synchronize(device)
    return time.perf_counter() - start


def warm_and_time(step, warmup: int, updates: int, device) -> tuple[float, float]:
    """``(warm-up seconds, seconds per timed update)``."""
    warm = seconds(step, warmup, device)
    return warm, seconds(step, updates, device) / updates


def vm_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))


@functools.cache
def cpu_peak_available() -> bool:
    """Whether this process can reset and read its peak resident set (Linux)."""
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
        return vm_kib("VmHWM") > 0
    except OSError:
        return False


def memory_mark(device) -> int:
    """Reset the peak and return the memory in use now (bytes); the start of :func:`memory_growth`."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated()
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # freed heap pages back to the OS, so that reuse shows as growth
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # VmHWM := VmRSS
    return vm_kib("VmRSS") * 1024


def memory_growth(device, mark: int) -> int:
    """The peak memory since :func:`memory_mark` above its mark (bytes)."""
    peak = torch.cuda.max_memory_allocated() if device.type == "cuda" else vm_kib("VmHWM") * 1024
    return peak - mark


def batched_measurement(algo: str, runs: int, compiled: bool, data: dict, device, updates: int) -> dict:
    """Seconds per batched update of R runs, compile seconds (compiled) and the peak memory growth (bytes)."""
    torch._dynamo.reset()  # a fresh compile: no recompile limit reached, no earlier graphs kept
    mark = memory_mark(device) if device.type == "cuda" or cpu_peak_available() else None
    batched = BatchedRuns(make_learners(algo, range(runs), device))
    if compiled:
        batched.compile("reduce-overhead" if device.type == "cuda" else None)
    generators, rows = make_generators(runs, device), batched.template.batch_rows
    warmup = batched.settings.policy_delay

    def step():
        batched.update([minibatch(data, rows, g) for g in generators], generators)

    warm, steady = warm_and_time(step, warmup, updates, device)
    peak = None if mark is None else memory_growth(device, mark)
    return {"seconds": steady, "compile": warm - warmup * steady if compiled else None, "peak": peak}


def separate_seconds(algo: str, runs: int, data: dict, device, updates: int, most: int) -> tuple[float, int]:
    """Seconds of R separate single-run updates (``min(R, most)`` learners timed, scaled by R), and how many timed."""
    timed = min(runs, most)
    learners, generators = make_learners(algo, range(timed), device), make_generators(timed, device)

    def step():
        for learner, generator in zip(learners, generators, strict=True):
            learner.update(minibatch(data, learner.batch_rows, generator), generator)

    _, steady = warm_and_time(step, learners[0].settings.policy_delay, updates, device)
    return steady * runs / timed, timed


def memory_per_run(algo: str, data: dict, device) -> int | None:
    """The peak memory growth of one eager batched run (R = 1, ``policy_delay`` updates); None if not measurable."""
    return batched_measurement(algo, 1, False, data, device, updates=1)["peak"]


def default_budget_gib(device) -> float:
    return torch.cuda.mem_get_info(device)[0] / GIB if device.type == "cuda" else 12.0


def row(algo: str, runs: int, mode: str, batched: dict, separate: tuple[float, int]) -> str:
    s, (apart, timed) = batched["seconds"], separate
    compile_s = "-" if batched["compile"] is None else f"{batched['compile']:.1f}"
    peak = "-" if batched["peak"] is None else f"{batched['peak'] / MIB:.0f}"
    return (
        f"{algo:<9} {runs:>3} {mode:<8} {s:>9.3f} {1 / s:>9.2f} {runs / s:>9.2f} {apart:>10.3f} "
        f"{f'{timed}/{runs}':>6} {apart / s:>6.2f} {compile_s:>9} {peak:>8}"
    )


HEADER = (
    f"{'method':<9} {'R':>3} {'mode':<8} {'s/update':>9} {'upd/s/run':>9} {'run-upd/s':>9} {'separate':>10} "
    f"{'timed':>6} {'ratio':>6} {'compile s':>9} {'peak MiB':>8}"
)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument(
        "--algos", nargs="+", default=["spacql", "cfcql", "matd3-bc"], choices=list(METHODS), metavar="ALGO"
    )
    parser.add_argument("--runs", nargs="+", type=int, default=[1, 5, 20, 50], help="values of R")
    parser.add_argument("--modes", nargs="+", default=["eager", "compiled"], choices=["eager", "compiled"])
    parser.add_argument("--updates", type=int, default=3, help="timed updates per measurement (after the warm-up)")
    parser.add_argument("--separate-runs", type=int, default=5, help="most separate learners timed (scaled to R)")
    parser.add_argument("--max-gib", type=float, help="memory budget (default: 12 on a CPU, the free memory on CUDA)")
    args = parser.parse_args(argv)
    refused = [algo for algo in args.algos if algo not in BATCHABLE_METHODS]
    if refused:
        parser.error(f"--algos: {', '.join(refused)} not batchable (BatchedRuns takes {', '.join(BATCHABLE_METHODS)})")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    torch.compiler.config.force_disable_caches = True  # cold compile times (module docstring)
    warnings.filterwarnings("ignore", message="dynamo_pgo force disabled")  # said at every compile
    device = torch.device(args.device)
    if device.type == "cpu":
        keep_freed_memory()
    budget = args.max_gib if args.max_gib is not None else default_budget_gib(device)
    data = synthetic_data("cn", DATASET_ROWS, device)
    print(
        f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} thread(s), CN settings, "
        f"{args.updates} timed updates after policy_delay warm-up updates, memory budget {budget:.1f} GiB",
        flush=True,
    )
    print(HEADER, flush=True)
    for algo in args.algos:
        per_run = memory_per_run(algo, data, device)
        probe = "not measurable: no guard" if per_run is None else f"{per_run / MIB:.0f} MiB per run"
        print(f"{algo:<9} memory probe (R = 1, eager): {probe}", flush=True)
        for runs in args.runs:
            if per_run is not None and runs * per_run > budget * GIB:
                need = f"~{runs * per_run / GIB:.1f} GiB"
                print(f"{algo:<9} {runs:>3} skipped: needs {need} > --max-gib {budget:.1f}", flush=True)
                continue
            separate = separate_seconds(algo, runs, data, device, args.updates, args.separate_runs)
            for mode in args.modes:
                batched = batched_measurement(algo, runs, mode == "compiled", data, device, args.updates)
                print(row(algo, runs, mode, batched, separate), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
