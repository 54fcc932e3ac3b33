"""The trainer process (the registry's single writer) and the Kafka I/O around the registry core.

``service`` runs the control-topic loop; ``labeled_reader`` reads training sets from
``driftline.labeled``; ``state_loader`` rebuilds the registry state from its topics;
``client`` is what the CLI, tests and demos use to send commands and wait for outcomes.
"""
