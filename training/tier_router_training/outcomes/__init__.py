"""Learning from outcomes: a router and an answer check fitted on observed answers.

- :mod:`.records`: the per-prompt table the learners read (records are
  :class:`classifier_service.feedback.OutcomeRecord`, read by
  :func:`tier_router_training.outcome_records.read_outcomes`);
- :mod:`.fit`: fitting the router and the check (hyperparameters by cross-validation);
- :mod:`.calibrate`: operating points (router and check thresholds together) and their choice;
- :mod:`.report`: evaluation against always-each-tier, random and the oracle.

Serving (the folder, its loader and scorer, what the check sees of an answer) is the service's:
:mod:`classifier_service.routing.outcome_model` and
:mod:`classifier_service.routing.answer_features`.
"""
