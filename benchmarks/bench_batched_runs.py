"""Updates per second of R runs trained as one program (deep/algorithms/batched.py) against R separate runs.

    OMP_NUM_THREADS=1 python benchmarks/bench_batched_runs.py                  # CN settings, R = 1, 5, 20
    python benchmarks/bench_batched_runs.py --device cuda --runs 1 5 20 50

For each method and R: the seconds of one update of all R runs together (``BatchedRuns.update``, eager),
and of R separate single-run updates (``OfflineLearner.update``, eager, the trainer's path), both on
minibatches drawn on the device from a synthetic dataset of CN's shapes, in the same run; the ratio is
separate / batched (above 1: batching pays). On a CPU the update is compute-bound, so little gain is
expected; the gain is on a GPU, where one small run leaves most of the chip idle. With CUDA the peak
memory of the batched update is printed too.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch
from bench_offline_updates import synthetic_data  # the sibling script (this folder is on sys.path when run)

from deep.algorithms.batched import BatchedRuns
from deep.algorithms.learner import keep_freed_memory
from deep.algorithms.offline import LearnerSettings, OfflineLearner, default_hyperparameters
from deep.envs.tasks import task_spec


def make_learners(algo: str, runs: int, device) -> list[OfflineLearner]:
    spec = task_spec("cn")
    values = default_hyperparameters("cn", "medium", algo)
    values.pop("updates")
    learners = []
    for seed in range(runs):
        torch.manual_seed(seed)
        settings = LearnerSettings(algo=algo, **values)
        learners.append(OfflineLearner(settings, spec.n_agents, spec.obs_dim, spec.act_dims, spec.state_dim, device))
    return learners


def synchronize(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def seconds_per_update(step, updates: int, device) -> float:
    step()  # warm-up
    synchronize(device)
    start = time.perf_counter()
    for _ in range(updates):
        step()
    synchronize(device)
    return (time.perf_counter() - start) / updates


def measure(algo: str, runs: int, data: dict, device, updates: int) -> tuple[float, float, str]:
    """Seconds of one update of R runs batched, and of R separate updates; the batched peak memory (CUDA)."""
    generators = [torch.Generator(device=device).manual_seed(100 + r) for r in range(runs)]
    separate = make_learners(algo, runs, device)
    size = separate[0].settings.batch_size

    def batch(generator):
        rows = torch.randint(20_000, (size,), generator=generator, device=device)
        return {key: value.index_select(0, rows) for key, value in data.items()}

    def separate_step():
        for learner, generator in zip(separate, generators, strict=True):
            learner.update(batch(generator), generator)

    batched = BatchedRuns(make_learners(algo, runs, device))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    together = seconds_per_update(lambda: batched.update([batch(g) for g in generators], generators), updates, device)
    memory = f"  peak {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB" if device.type == "cuda" else ""
    return together, seconds_per_update(separate_step, updates, device), memory


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--algos", nargs="+", default=["spacql", "cfcql"])
    parser.add_argument("--runs", nargs="+", type=int, default=[1, 5, 20])
    parser.add_argument("--updates", type=int, default=3, help="timed updates per measurement")
    args = parser.parse_args(argv)
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    device = torch.device(args.device)
    if device.type == "cpu":
        keep_freed_memory()
    data = synthetic_data("cn", 20_000, device)
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} thread(s), CN settings")
    print(f"{'algorithm':<8} {'R':>3} {'batched s':>10} {'separate s':>11} {'ratio':>6} {'upd/s/run':>10}")
    for algo in args.algos:
        for runs in args.runs:
            together, apart, memory = measure(algo, runs, data, device, args.updates)
            print(
                f"{algo:<8} {runs:>3} {together:>10.3f} {apart:>11.3f} {apart / together:>6.2f} "
                f"{1 / together:>10.2f}{memory}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
