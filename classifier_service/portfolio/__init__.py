"""The portfolio as data: endpoints, tiers, rules (:mod:`.model`), schedule windows
(:mod:`.schedule`) and the answer check's settings (:mod:`.quality`).

Pure data and validation; imports nothing of the service above it (only the errors).
"""
