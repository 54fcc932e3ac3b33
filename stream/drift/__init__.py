"""The drift core (pure: no Kafka, no faust): what the stream worker computes per model.

Event-time windows and their profiles, drift scores and their calibration, the decision
policy, the label join, per-version performance and error-rate detectors, the online
challenger and the post-deployment check of the serving version. ``monitor.ModelMonitor``
ties them together; the faust worker in ``driftline.stream`` feeds it and stores its state.
"""
