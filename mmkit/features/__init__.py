"""Single-modality features: visual (``visual``), text (``text``) and audio (``audio``)."""
