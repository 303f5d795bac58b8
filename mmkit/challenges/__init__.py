"""The open challenges of multi-modal retrieval, each measured on the world (notebook 10).

One module per challenge; each defines the models it needs as checkpoints (``mmkit train NAME``)
and the measurement behind the notebook's table or figure:

- :mod:`mmkit.challenges.data`         scenes re-rendered in a chosen style; the challenge splits
- :mod:`mmkit.challenges.model`        the small image encoder the challenges train, with heads
- :mod:`mmkit.challenges.training`     its one training loop (samplers, loss weights, logit
                                       adjustment, style adversary, auxiliary heads) and scoring
- :mod:`mmkit.challenges.cross_domain` photo -> sketch -> painting: the domain gap, two adaptations
- :mod:`mmkit.challenges.imbalance`    long-tailed worlds: head vs tail, three remedies
- :mod:`mmkit.challenges.fine_grained` sibling classes: where the confusion sits, attribute heads
- :mod:`mmkit.challenges.multitask`    retrieval alone vs with attribute and class heads
- :mod:`mmkit.challenges.explain`      why this image for this caption: heat maps, word
                                       attributions, the pointing game
- :mod:`mmkit.challenges.compact`      the image tower distilled and quantised to int8
"""
