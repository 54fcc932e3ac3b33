"""Training a candidate (pure: no Kafka): learners, window choice, the online challenger, one training run.

``run.train_version`` turns a training set into a judged, signed, versioned record and the
outputs the trainer publishes; ``config`` holds the ``[trainer]`` and ``[governance]`` settings.
"""
