"""Latent planning: L1 energy, CEM, receding-horizon MPC, agent API and closed-loop episodes (`rollout`).

```python
agent = planning.Agent.from_pretrained("default", samples=200)
metrics = planning.rollout(env, agent, seed=0)
```
"""
from .agent import Agent
from .cem import CEMConfig, CEMResult, cem, shift_plan
from .energy import EnergyConfig, energy, feature_energy, normalize_reps
from .errors import InvalidObservationError, PlannerConfigError
from .imagine import Context, imagine
from .planner import LatentPlanner, PlannerConfig, PlanResult
from .policies import ExpertPolicy, RandomPolicy
from .rollout import rollout

__all__ = [
    "Agent", "CEMConfig", "CEMResult", "Context", "EnergyConfig", "ExpertPolicy", "InvalidObservationError",
    "LatentPlanner", "PlanResult", "PlannerConfig", "PlannerConfigError", "RandomPolicy", "cem", "energy",
    "feature_energy", "imagine", "normalize_reps", "rollout", "shift_plan",
]
