"""The benchmark scripts (run as ``python benchmarks/NAME.py``) and the helpers they share.

A package only so that tests can import the shared helpers (``benchmarks.chat_server``,
``benchmarks.reference``, ``benchmarks.injections``) by a name no other installed ``benchmarks``
folder can shadow; the scripts themselves import their siblings by plain name.
"""
