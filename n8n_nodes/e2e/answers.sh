# What each tier's (fake) model answers in the end-to-end run; check.py reads the same file.
# The simple model hedges, so tier-router's quality check escalates its answers.
SIMPLE_ANSWER="I'm not sure."
MEDIUM_ANSWER="Medium model: a complete answer, with the reasoning laid out step by step and a short summary at the end."
COMPLEX_ANSWER="Complex model: a thorough answer that weighs the options, explains the trade-offs and ends with a recommendation."
