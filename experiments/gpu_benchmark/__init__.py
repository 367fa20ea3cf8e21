"""GPU benchmark of the likelihood phase and the rollout (`python -m experiments.gpu_benchmark`)."""
