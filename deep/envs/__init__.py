"""The benchmark tasks: the original MPE scenarios (a batched particle world) and MaMuJoCo HalfCheetah."""
