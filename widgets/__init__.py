"""Interactive views over the lessons library (ipywidgets + plotly); computation stays in lessons.

from widgets.schedule_explorer import ScheduleExplorer
from widgets.trajectory_explorer import TrajectoryExplorer
from widgets.sampler_explorer import SamplerExplorer
from widgets.few_steps_explorer import FewStepsExplorer
from widgets.training_monitor import TrainingMonitor
"""
