"""The worker's HTTP surfaces: health and readiness, metrics, the admin API and dashboard, the policy topic."""
