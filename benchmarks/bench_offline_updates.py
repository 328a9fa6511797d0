"""Update throughput of every offline method (deep/algorithms/methods.py) on CN and HalfCheetah, in one run.

    OMP_NUM_THREADS=1 python benchmarks/bench_offline_updates.py
    python benchmarks/bench_offline_updates.py --device cuda          # adds eager vs torch.compile per algorithm

Each algorithm runs its updates with the table's settings (deep/algorithms/offline.py; CN: hidden 64, batch
1024, 10 uniform penalty samples per agent; HalfCheetah: hidden 256, batch 256, 30 penalty samples
per agent; E = 10 critics for SPaCQL and ICQL-QS, CFCQL's twin critics for CFCQL and MACQL; input
normalization on), on minibatches drawn on the device from a synthetic dataset of the task's shapes.
One update is one critic update, plus the actor update every ``policy_delay = 5``-th: a timing of
10 updates holds 2 actor updates, so ms/update is the mean over two rounds. ``cfcql-10`` is CFCQL
with SPaCQL's 10 critics, so that the ratio SPaCQL / CFCQL-10 measures SPaCQL's own cost (its
partial targets and weights) at equal ensemble size; the run exits non-zero if it exceeds 2. Timings
are interleaved across algorithms (round robin, best of ``--repeats`` rounds) so that load changes
hit all of them alike.

The decentralized baselines (omar, matd3-bc, iql) count updates as their code's rounds: one update
trains every agent's critic (and actor) once, each agent on its own minibatch of the batch size
(``n x B`` rows): OMAR's rectification search included; MA-TD3+BC's actor every 2nd update.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch

from deep.algorithms.learner import keep_freed_memory
from deep.algorithms.methods import METHODS
from deep.envs.tasks import task_spec

ALGOS = ("spacql", "icql-qs", "cfcql", "macql", "cfcql-10", "omar", "matd3-bc", "iql")
SETTINGS_CHANGES = {"cfcql-10": ("cfcql", {"n_critics": 10})}
"""Benchmark name -> (algorithm, changed settings); every other name is the algorithm with the table's settings."""
MAX_RATIO = 2.0


def synthetic_data(task: str, size: int, device) -> dict[str, torch.Tensor]:
    spec = task_spec(task)
    generator = torch.Generator().manual_seed(0)

    def uniform(*shape):
        return (torch.rand(shape, generator=generator) * 2 - 1).to(device)

    n = spec.n_agents
    return {
        "obs": uniform(size, n, spec.obs_dim),
        "actions": uniform(size, n, spec.act_dim),
        "rewards": uniform(size),
        "next_obs": uniform(size, n, spec.obs_dim),
        "next_actions": uniform(size, n, spec.act_dim),
        "terminals": torch.zeros(size, device=device),
        "state": uniform(size, spec.state_dim),
        "next_state": uniform(size, spec.state_dim),
    }


def make_runner(task: str, name: str, device, compiled: bool):
    spec = task_spec(task)
    algo, changes = SETTINGS_CHANGES.get(name, (name, {}))
    method = METHODS[algo]
    values = method.defaults(task, "medium") | changes
    values.pop("updates")
    torch.manual_seed(0)
    learner = method.learner(
        method.settings(algo=algo, **values), spec.n_agents, spec.obs_dim, spec.act_dims, spec.state_dim, device
    )
    if compiled:
        learner.compile("reduce-overhead" if device.type == "cuda" else None)
    data = synthetic_data(task, 20_000, device)
    generator = torch.Generator(device=device).manual_seed(0)

    def run(updates: int) -> float:
        """Seconds per update over ``updates`` updates (synchronized only at the ends)."""
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(updates):
            rows = torch.randint(20_000, (learner.batch_rows,), generator=generator, device=device)
            learner.update({key: value.index_select(0, rows) for key, value in data.items()}, generator)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - start) / updates

    return run


def measure(task: str, variants: dict, updates: int, repeats: int, warmup: int) -> dict:
    runners = {name: make_runner(task, algo, device, compiled) for name, (algo, device, compiled) in variants.items()}
    for run in runners.values():
        run(warmup)
    best = dict.fromkeys(runners, float("inf"))
    for _ in range(repeats):
        for name, run in runners.items():
            best[name] = min(best[name], run(updates))
    return best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--tasks", nargs="+", default=["cn", "halfcheetah"])
    parser.add_argument("--updates", type=int, default=10, help="updates per timing (x10 on CUDA)")
    parser.add_argument("--repeats", type=int, default=3, help="timing rounds; the best is kept")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (always on CUDA)")
    args = parser.parse_args(argv)
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    device = torch.device(args.device)
    if device.type == "cpu":
        keep_freed_memory()
    compare_compiled = args.compile or device.type == "cuda"
    updates = args.updates * (10 if device.type == "cuda" else 1)
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} thread(s), {updates} updates/timing")
    failed = False
    for task in args.tasks:
        variants = {algo: (algo, device, False) for algo in ALGOS}
        if compare_compiled:
            compilable = [name for name in ALGOS if METHODS[SETTINGS_CHANGES.get(name, (name,))[0]].compilable]
            variants |= {f"{algo} (compiled)": (algo, device, True) for algo in compilable}
        seconds = measure(task, variants, updates, args.repeats, warmup=3 if not compare_compiled else 20)
        print(f"\n{task}: {'algorithm':<22} {'updates/s':>10} {'ms/update':>10}")
        for name, value in seconds.items():
            extra = ""
            if name.endswith("(compiled)"):
                extra = f"  {seconds[name.removesuffix(' (compiled)')] / value:.2f}x eager"
            print(f"{task}: {name:<22} {1 / value:>10.2f} {1000 * value:>10.1f}{extra}")
        ratio = seconds["spacql"] / seconds["cfcql-10"]
        print(f"{task}: SPaCQL / CFCQL-10 time per update = {ratio:.2f} (limit {MAX_RATIO})")
        failed |= ratio > MAX_RATIO
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
