"""tier-router's training pipeline and its labelled corpus (the ``training/`` folder)."""
