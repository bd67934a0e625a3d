"""MuJoCo scenes as Gymnasium environments (simjepa/Reach-v0, Push-v0, PickPlace-v0)."""
