"""The small PyTorch library behind the course: data, schedules, paths, models, samplers, metrics.

Time convention everywhere: t in [0, 1], t = 0 is noise, t = 1 is data.
Import what you need by explicit name, e.g. ``from lessons.ddpm import ancestral_sample``.
"""
