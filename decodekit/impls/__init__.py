"""Implementations layer: what can be called.

One ``Impl`` per implementation (``impl``), one ``KernelSpec`` per kernel file
(``kernel_spec``) and the kit variants declared from them (``variants``), the peers
(``baselines``), tuning tables, search space and the ``best`` dispatcher, and the catalog
the rest of the kit looks names up in (``registry``).
"""
