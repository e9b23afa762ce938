"""The model fleet on the GPU servers: VRAM planner (:mod:`.vram`), GPU memory monitor
(:mod:`.gpu_monitor`), preload guard (:mod:`.vram_guard`), which models are loaded
(:mod:`.residency`) and the scheduler's runner (:mod:`.scheduler`).

A new GPU memory source goes in :mod:`.gpu_monitor`. Imports the portfolio and the errors;
never the gateway or the API.
"""
