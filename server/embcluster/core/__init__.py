"""The service core, one concern per module (see docs/architecture.md):

* :mod:`.records` — the collection record, the open collection, point ids and reserved fields;
* :mod:`.kinds` — input kinds as strategies (embedder, vectors of items, source payload, queries);
* :mod:`.registry` — the one place that creates, attaches, adopts, opens and deletes collections;
* :mod:`.labelling` — write-back, catch-up and revert of the reserved fields;
* :mod:`.clustering` — clustering runs and rollbacks (fit, publish, prune);
* :mod:`.featurizers` — the EVENT featurizer life cycle (automatic fit, refit, repair);
* :mod:`.points` — ingest (one labelling tail), reads, classify, search, explain;
* :mod:`.status` — drift and scheduling status;
* :mod:`.report` — the cluster report of a collection (sample, history, summaries → HTML);
* :mod:`.service` — :class:`~embcluster.core.service.EmbclusterService`, the facade composing them.

This package imports nothing at import time, so any of its modules can be imported alone.
"""

__all__: list[str] = []
