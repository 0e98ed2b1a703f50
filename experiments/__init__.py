"""The harness: Hydra entry points, MLflow tracking, sweeps, reports and plots."""
