"""Latent planning: L1 energy, CEM, receding-horizon MPC, agent API and rollouts."""
