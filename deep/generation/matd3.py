"""Online MATD3: centralized twin critics, decentralized deterministic actors, Gaussian exploration.

    python -m deep.generation.matd3 --task cn --total-steps 200000 --out-dir runs/matd3-cn

The behavior policies of the offline datasets come from this trainer (D4RL-style recipe of the
original benchmark, see deep/collect.py). TD3 (Fujimoto et al. 2018) with one critic pair on the
global state and all agents' actions, and one actor per agent on its own observation:

    y = r + gamma (1 - terminal) min_{m=1,2} Q'_m(s', a'),  a'_i = clip(pi'_i(o'_i) + clip(eps, -c, c), -1, 1)
    critic loss = sum_m (Q_m(s, a) - y)^2;   actor i: maximize Q_1(s, a_1..pi_i(o_i)..a_n) every `policy_delay`
    updates, the other agents' actions taken from the replay batch.

Training is resumable: a checkpoint (networks, optimizers, replay buffer, random generators,
counters, evaluation log) is written atomically at episode boundaries, and every episode's
environments are reset with seeds derived from (seed, episode), so a resumed run continues
exactly as an uninterrupted one would on the CPU.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import tyro
from tqdm import tqdm

from deep.algorithms.evaluation import deterministic_policy, load_actor, team_returns
from deep.algorithms.networks import Actors, Critics, resolve_device, soft_update
from deep.envs.tasks import TeamEnv, opponent_task, task_spec
from deep.storage.files import load_resume_checkpoint, save_atomically, write_atomically


@dataclass
class MATD3Config:
    """Online MATD3 training of a team on one task."""

    task: str = "cn"
    """Task: cn, pp, world or halfcheetah."""
    seed: int = 0
    """Seed of networks, exploration noise, replay sampling and environment resets."""
    total_steps: int = 200_000
    """Environment transitions to collect (all parallel copies together)."""
    n_envs: int = 8
    """Parallel environment copies stepped together."""
    hidden: int = 64
    """Hidden width of actors and critics (64 for MPE, 256 for HalfCheetah in the baselines)."""
    batch_size: int = 1024
    """Replay minibatch size."""
    buffer_size: int = 1_000_000
    """Replay capacity in transitions."""
    gamma: float = 0.95
    """Discount factor."""
    tau: float = 0.01
    """Polyak rate of the target networks."""
    lr_actor: float = 1e-3
    """Actor learning rate (Adam)."""
    lr_critic: float = 1e-3
    """Critic learning rate (Adam)."""
    exploration_noise: float = 0.1
    """Std of the Gaussian noise added to actions while collecting."""
    policy_noise: float = 0.2
    """Std of the target-policy smoothing noise."""
    noise_clip: float = 0.5
    """Clip of the target-policy smoothing noise."""
    policy_delay: int = 2
    """Critic updates per actor update."""
    learning_starts: int = 10_000
    """Transitions collected with uniform random actions before learning starts."""
    updates_per_transition: float = 0.125
    """Gradient updates per collected transition once learning has started."""
    eval_every: int = 10_000
    """Evaluate the deterministic policy every this many transitions."""
    eval_episodes: int = 10
    """Episodes per evaluation (run as parallel copies)."""
    checkpoint_every: int = 20_000
    """Write a resumable checkpoint every this many transitions (at the next episode boundary)."""
    out_dir: str = "runs/matd3"
    """Where checkpoint.pt, actor.pt, eval.jsonl and snapshots/actor_<steps>.pt (one per evaluation) go."""
    resume: bool = False
    """Continue from out_dir/checkpoint.pt."""
    opponent_actor: str | None = None
    """Actor weights of the other side (pp, world, pp-prey, world-good), played deterministically;
    default: uniform random opponents."""
    opponent_hidden: int = 64
    """Hidden width of the opponent actor."""
    device: str = "auto"
    """cpu, cuda, or auto (cuda when available)."""


class ReplayBuffer:
    """A FIFO buffer of team transitions held as numpy arrays (obs [C, n, obs_dim], ...)."""

    FIELDS = ("obs", "actions", "rewards", "next_obs", "terminals", "state", "next_state")

    def __init__(self, capacity: int, n_agents: int, obs_dim: int, act_dim: int, state_dim: int):
        shapes = {
            "obs": (n_agents, obs_dim),
            "actions": (n_agents, act_dim),
            "rewards": (),
            "next_obs": (n_agents, obs_dim),
            "terminals": (),
            "state": (state_dim,),
            "next_state": (state_dim,),
        }
        self.data = {name: np.zeros((capacity, *shape), dtype=np.float32) for name, shape in shapes.items()}
        self.capacity, self.size, self.cursor = capacity, 0, 0

    def add(self, **batch: np.ndarray) -> None:
        """Append a batch of transitions (each field with leading dimension E)."""
        count = len(batch["rewards"])
        rows = (self.cursor + np.arange(count)) % self.capacity
        for name in self.FIELDS:
            self.data[name][rows] = batch[name]
        self.cursor = int((self.cursor + count) % self.capacity)
        self.size = min(self.size + count, self.capacity)

    def sample(self, rng: np.random.Generator, batch_size: int, device) -> dict[str, torch.Tensor]:
        rows = rng.integers(self.size, size=batch_size)
        return {name: torch.as_tensor(self.data[name][rows], device=device) for name in self.FIELDS}

    def state_dict(self) -> dict:
        return {
            "data": {name: torch.from_numpy(self.data[name][: self.size].copy()) for name in self.FIELDS},
            "size": self.size,
            "cursor": self.cursor,
        }

    def load_state_dict(self, state: dict) -> None:
        self.size, self.cursor = int(state["size"]), int(state["cursor"])
        for name in self.FIELDS:
            self.data[name][: self.size] = state["data"][name].numpy()


class MATD3:
    """Networks, optimizers and the update of MATD3 (module docstring)."""

    def __init__(self, config: MATD3Config, n_agents: int, obs_dim: int, act_dim: int, state_dim: int, device):
        torch.manual_seed(config.seed)
        self.config, self.device = config, device
        self.actors = Actors(n_agents, obs_dim, act_dim, config.hidden).to(device)
        self.critics = Critics(2, state_dim, n_agents, act_dim, config.hidden).to(device)
        self.target_actors = copy.deepcopy(self.actors)
        self.target_critics = copy.deepcopy(self.critics)
        self.actor_optimizer = torch.optim.Adam(self.actors.parameters(), lr=config.lr_actor)
        self.critic_optimizer = torch.optim.Adam(self.critics.parameters(), lr=config.lr_critic)
        self.updates = 0

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Deterministic actions ``[E, n, act_dim]`` for observations ``[E, n, obs_dim]``."""
        with torch.no_grad():
            return self.actors(torch.as_tensor(obs, device=self.device)).cpu().numpy()

    def update(self, batch: dict[str, torch.Tensor], generator: torch.Generator) -> None:
        config = self.config
        with torch.no_grad():
            noise = torch.randn(batch["actions"].shape, generator=generator, device=self.device) * config.policy_noise
            next_actions = self.target_actors(batch["next_obs"]) + noise.clamp(-config.noise_clip, config.noise_clip)
            next_q = self.target_critics(batch["next_state"], next_actions.clamp(-1.0, 1.0)).min(dim=0).values  # [B]
            target = batch["rewards"] + config.gamma * (1.0 - batch["terminals"]) * next_q
        critic_loss = ((self.critics(batch["state"], batch["actions"]) - target) ** 2).mean(dim=1).sum()
        self.critic_optimizer.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_optimizer.step()
        self.updates += 1
        if self.updates % config.policy_delay:
            return
        own = self.actors(batch["obs"])  # [B, n, act]
        batch_size, n = own.shape[:2]
        # n joint actions per sample: agent i's replaced by pi_i(o_i), the others from the batch
        replaced = torch.where(
            torch.eye(n, dtype=torch.bool, device=self.device)[:, None, :, None], own, batch["actions"]
        )
        q = self.critics(batch["state"].repeat(n, 1), replaced.reshape(n * batch_size, n, -1))[0]  # Q_1, [n * B]
        actor_loss = -q.mean()
        self.actor_optimizer.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_optimizer.step()
        soft_update(self.target_actors, self.actors, config.tau)
        soft_update(self.target_critics, self.critics, config.tau)

    def state_dict(self) -> dict:
        return {
            name: getattr(self, name).state_dict()
            for name in ("actors", "critics", "target_actors", "target_critics", "actor_optimizer", "critic_optimizer")
        } | {"updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        for name in ("actors", "critics", "target_actors", "target_critics", "actor_optimizer", "critic_optimizer"):
            getattr(self, name).load_state_dict(state[name])
        self.updates = int(state["updates"])


def make_opponent(config: MATD3Config):
    """The fixed opponent of the run: ``config.opponent_actor`` played deterministically, or None (uniform)."""
    if config.opponent_actor is None:
        return None
    return deterministic_policy(load_actor(config.opponent_actor, opponent_task(config.task), config.opponent_hidden))


def _resumable_fields(config: dict) -> dict:
    """The config fields a resumed run must share with its checkpoint (it may run longer, elsewhere).

    A field the checkpoint does not know (added to the config after it was written) takes its default.
    """
    config = asdict(MATD3Config()) | config
    return {key: value for key, value in config.items() if key not in ("resume", "total_steps", "device")}


def train(config: MATD3Config, progress: bool = True, stop_at_return: float | None = None) -> dict:
    """Run (or resume) MATD3; returns the final state: agent, buffer, evaluation log.

    ``stop_at_return`` ends training at the first evaluation whose mean return reaches it (the
    medium-replay recipe: the buffer then holds every transition stored until medium).
    """
    spec = task_spec(config.task)
    device = resolve_device(config.device)
    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    agent = MATD3(config, spec.n_agents, spec.obs_dim, spec.act_dim, spec.state_dim, device)
    buffer = ReplayBuffer(config.buffer_size, spec.n_agents, spec.obs_dim, spec.act_dim, spec.state_dim)
    rng = np.random.default_rng(config.seed)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    steps, episodes, log = 0, 0, []
    checkpoint_path = out_dir / "checkpoint.pt"
    if config.resume:
        state = load_resume_checkpoint(checkpoint_path, device, asdict(config), _resumable_fields)
        agent.load_state_dict(state["agent"])
        buffer.load_state_dict(state["buffer"])
        rng.bit_generator.state = json.loads(state["numpy_rng"])
        generator.set_state(state["torch_rng"])
        steps, episodes, log = int(state["steps"]), int(state["episodes"]), json.loads(state["log"])
        # evaluations written after the checkpoint (a run killed between the two) are redone, not repeated
        lines = "".join(json.dumps(row) + "\n" for row in log)
        write_atomically(out_dir / "eval.jsonl", lambda temporary: temporary.write_text(lines))

    opponent = make_opponent(config)
    env = TeamEnv(config.task, n_envs=config.n_envs, seed=config.seed, opponent=opponent)
    bar = tqdm(total=config.total_steps, initial=steps, disable=not progress, desc=f"MATD3 {config.task}")
    next_eval = (steps // config.eval_every + 1) * config.eval_every
    next_checkpoint = (steps // config.checkpoint_every + 1) * config.checkpoint_every
    reached = False
    while steps < config.total_steps and not reached:
        obs, state = env.reset(seed=config.seed * 1_000_003 + episodes * config.n_envs)
        done = False
        while not done:
            if steps < config.learning_starts:
                actions = rng.uniform(-1.0, 1.0, size=(config.n_envs, spec.n_agents, spec.act_dim))
            else:
                noise = rng.normal(scale=config.exploration_noise, size=(config.n_envs, spec.n_agents, spec.act_dim))
                actions = np.clip(agent.act(obs) + noise, -1.0, 1.0)
            actions = actions.astype(np.float32)
            next_obs, next_state, reward, terminated, truncated = env.step(actions)
            buffer.add(
                obs=obs,
                actions=actions,
                rewards=reward,
                next_obs=next_obs,
                terminals=terminated.astype(np.float32),
                state=state,
                next_state=next_state,
            )
            obs, state = next_obs, next_state
            steps += config.n_envs
            bar.update(config.n_envs)
            done = bool((terminated | truncated).all())
            if steps >= config.learning_starts:
                for _ in range(max(1, round(config.n_envs * config.updates_per_transition))):
                    agent.update(buffer.sample(rng, config.batch_size, device), generator)
        episodes += 1
        if steps >= next_eval:
            returns = team_returns(
                config.task, agent.act, config.eval_episodes, seed=10_000_019 + config.seed, opponent=opponent
            )
            mean, std = float(returns.mean()), float(returns.std())
            log.append({"steps": steps, "return_mean": mean, "return_std": std, "time": time.time()})
            bar.set_postfix(eval_return=f"{mean:.1f}")
            with open(out_dir / "eval.jsonl", "a") as handle:
                handle.write(json.dumps(log[-1]) + "\n")
            # every evaluated actor is kept: the medium behavior policy is chosen among them afterwards
            (out_dir / "snapshots").mkdir(exist_ok=True)
            save_atomically(agent.actors.state_dict(), out_dir / "snapshots" / f"actor_{steps:09d}.pt")
            next_eval += config.eval_every
            reached = stop_at_return is not None and mean >= stop_at_return
        if steps >= next_checkpoint or steps >= config.total_steps or reached:
            save_atomically(
                {
                    "config": asdict(config),
                    "agent": agent.state_dict(),
                    "buffer": buffer.state_dict(),
                    "numpy_rng": json.dumps(rng.bit_generator.state),
                    "torch_rng": generator.get_state(),
                    "steps": steps,
                    "episodes": episodes,
                    "log": json.dumps(log),
                },
                checkpoint_path,
            )
            save_atomically(agent.actors.state_dict(), out_dir / "actor.pt")
            next_checkpoint += config.checkpoint_every
    bar.close()
    return {"agent": agent, "buffer": buffer, "log": log, "steps": steps}


if __name__ == "__main__":
    train(tyro.cli(MATD3Config))
