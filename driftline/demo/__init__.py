"""The embedded demo: local broker, synthetic drifting traffic, the whole loop visible."""
