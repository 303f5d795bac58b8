"""Exercises of notebook 10 (the open challenges), one module per section:

1. :mod:`.cross_domain`  a style-normalised embedding and its photo -> sketch R@1;
2. :mod:`.imbalance`     post-hoc logit adjustment: the tau that maximises balanced accuracy;
3. :mod:`.fine_grained`  re-ranking the top 10 with predicted attributes, R@1 on sibling classes;
4. :mod:`.multitask`     the attribute head's accuracy on the horizontal position;
5. :mod:`.explain`       the energy-based pointing game;
6. :mod:`.compact`       per-channel int8 quantisation error by hand.

Each checker returns a :class:`~mmkit.exercises.Feedback`; ``mmkit.exercises.solution("10", k)``
shows the worked solution of exercise ``k``.
"""
from __future__ import annotations

from mmkit.exercises.nb10.compact import check_per_channel_error, solution_per_channel_error
from mmkit.exercises.nb10.cross_domain import (check_style_normalised_r1,
                                               solution_style_normalised_r1)
from mmkit.exercises.nb10.explain import check_energy_pointing, solution_energy_pointing
from mmkit.exercises.nb10.fine_grained import check_attribute_rerank, solution_attribute_rerank
from mmkit.exercises.nb10.imbalance import check_posthoc_tau, solution_posthoc_tau
from mmkit.exercises.nb10.multitask import check_head_accuracy, solution_head_accuracy

#: the worked solution of each exercise, by its number in the notebook
SOLUTIONS = {1: solution_style_normalised_r1, 2: solution_posthoc_tau,
             3: solution_attribute_rerank, 4: solution_head_accuracy,
             5: solution_energy_pointing, 6: solution_per_channel_error}

__all__ = ["SOLUTIONS", "check_attribute_rerank", "check_energy_pointing", "check_head_accuracy",
           "check_per_channel_error", "check_posthoc_tau", "check_style_normalised_r1",
           "solution_attribute_rerank", "solution_energy_pointing", "solution_head_accuracy",
           "solution_per_channel_error", "solution_posthoc_tau", "solution_style_normalised_r1"]
