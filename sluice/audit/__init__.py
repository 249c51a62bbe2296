"""Provenance: what a run used, kept with it, and the answers an auditor asks for.

- :mod:`sluice.audit.store`: the write-once, content-addressed stores (``_objects``, ``_inputs``);
- :mod:`sluice.audit.keep`: what each run stores before its manifest, and the manifest copies;
- :mod:`sluice.audit.records`: the manifest's ``audit`` section and what readers take from it;
- :mod:`sluice.audit.lookup`: where a row is and why (``sluice audit``);
- :mod:`sluice.audit.retention`: what has expired and is not held (``sluice retention``).

``sluice replay`` runs the pipeline, so it lives above: :mod:`sluice.pipeline.replay`.
"""
