"""What ``envs`` and ``world_model`` share, importable without either of them.

``import envs`` registers Gymnasium environments and sets ``MUJOCO_GL``; the model package must not
pay for that (or need a simulator) just to raise an error, write a file atomically or read an
episode. So the shared pieces live here, with no side effects and no dependency beyond numpy:

- :mod:`simjepa_core.errors`: :class:`SimjepaError`, the one error type users see;
- :mod:`simjepa_core.atomic`: atomic file writes (temp file + rename);
- :mod:`simjepa_core.episodes`: the episode format on disk, the interface between ``envs``
  (which writes episodes) and ``world_model`` (which reads them);
- :mod:`simjepa_core.state_layout`: named indices of the 7-D proprioceptive state and action.
"""
