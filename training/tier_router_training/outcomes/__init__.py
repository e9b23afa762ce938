"""Learning from outcomes: a router and an answer check fitted on observed answers.

- :mod:`.records`: the outcome record and the per-prompt table the learners read;
- :mod:`.answer_features`: what the check sees of an answer;
- :mod:`.fit`: fitting the router and the check (hyperparameters by cross-validation);
- :mod:`.calibrate`: operating points (router and check thresholds together) and their choice;
- :mod:`.model`: the saved folder (no pickle) and its loader/scorer;
- :mod:`.report`: evaluation against always-each-tier, random and the oracle.
"""
