"""The layout of ``obs["state"][:7]``, the arm's proprioception, named once for every package.

``state7 = [x, y, z, roll, pitch, yaw, gripper]`` (see :mod:`envs.proprio` for the frames and units).
It lives here, beside the episode format, so ``world_model`` can name it without importing the
simulator, and ``envs`` and ``planning`` index states and actions through it instead of raw numbers.
"""

# The layout of ``state[:7]``, named once; the 7-D action uses the same layout (position and Euler
# deltas, then the absolute gripper command), so these index actions too.
STATE7_NAMES = ("x", "y", "z", "roll", "pitch", "yaw", "gripper")
PROPRIO_DIM = len(STATE7_NAMES)
POS = slice(0, 3)  # TCP position (m) / its delta
EULER = slice(3, 6)  # orientation, Euler xyz (rad) / its delta
POSE = slice(0, 6)  # position and orientation: what an action moves by a delta
ROTATION_DIMS = (3, 4, 5)  # roll, pitch, yaw
YAW = 5
GRIPPER = 6  # closure -1 open .. +1 closed / the absolute gripper command
