"""A tiny MATD3 run shared by the deep tests: CN, 4 copies, hidden 16, a few hundred transitions."""

from deep.generation.matd3 import MATD3Config


def tiny_matd3_config(out_dir, **changes) -> MATD3Config:
    values = dict(
        task="cn",
        seed=3,
        total_steps=400,
        n_envs=4,
        hidden=16,
        batch_size=32,
        learning_starts=100,
        updates_per_transition=0.25,
        eval_every=200,
        eval_episodes=2,
        checkpoint_every=200,
        out_dir=str(out_dir),
        device="cpu",
    )
    values.update(changes)
    return MATD3Config(**values)
