"""Where events, attempts and the provider's records are kept: the storage seam (:mod:`base`),
its typed rows (:mod:`rows`), ``--db`` (:mod:`url`) and the backends (:mod:`sqlite`,
:mod:`postgres`)."""
