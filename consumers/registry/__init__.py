"""The registry core (pure: no Kafka): what a version is and how it may move.

Semantic versions, the validation gate, governance commands, signed artifacts, the fold
of the registry topics (``state.RegistryState``), the retrain queue and the training-set
selection rule.
"""
