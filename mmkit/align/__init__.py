"""Adversarial and generative cross-modal alignment (notebook 06).

- :mod:`~mmkit.align.grl`: the gradient reversal layer and ACMR's lambda schedule;
- :mod:`~mmkit.align.acmr`: the ACMR-style aligner (projectors, label classifier, modality
  discriminator through gradient reversal, similarity and triplet terms);
- :mod:`~mmkit.align.cgan`: a conditional GAN that imagines image-space embeddings from text
  or sound (and translates caption features into sound features), stabilised with spectral
  normalisation, two time-scale updates and label smoothing;
- :mod:`~mmkit.align.probe`: the modality gap (centroid distance, linear probe accuracy);
- :mod:`~mmkit.align.features`: the frozen unimodal features they work on (cached);
- :mod:`~mmkit.align.protocol`: training world, evaluation world, the retrieval table.

Every model here is a few small MLPs on cached features and trains in seconds, so the
notebook trains them live; nothing is loaded but the committed unimodal checkpoints.
"""
from mmkit.align.acmr import ACMR_CONFIG, ACMRAligner, AlignRun, train_aligner
from mmkit.align.cgan import STABLE, UNSTABLE, ConditionalGAN, GANRun, spread, train_cgan
from mmkit.align.grl import GradientReversal, grad_reverse, grl_lambda
from mmkit.align.probe import centroid_gap, modality_probe

__all__ = ["ACMR_CONFIG", "ACMRAligner", "AlignRun", "train_aligner", "STABLE", "UNSTABLE",
           "ConditionalGAN", "GANRun", "spread", "train_cgan", "GradientReversal",
           "grad_reverse", "grl_lambda", "centroid_gap", "modality_probe"]
