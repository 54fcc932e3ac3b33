"""The client library serving code uses: follow ``driftline.model-updates`` and serve the current model.

from driftline.consumers.subscriber import ModelSubscriber
"""

from driftline.consumers.subscriber.client import ModelSubscriber, OnError, OnUpdate, ServedModel

__all__ = ["ModelSubscriber", "OnError", "OnUpdate", "ServedModel"]
