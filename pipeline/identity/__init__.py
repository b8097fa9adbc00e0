"""Identity: which patients of every source are one person (the master patient index).

Pure parts only: match keys (``keys``), field comparisons (``compare``), the Fellegi-Sunter model (``model``),
the decision for one patient (``decide``) and the golden record (``golden``). The SQL that blocks, stores links
and persons lives in ``pipeline.storage.identity``; the pass that drains the queue in ``pipeline.sync.linking``.
"""
