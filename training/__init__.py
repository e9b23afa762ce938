"""tier-router's training pipeline and its labelled corpus (installed as ``tier_router_training``)."""
