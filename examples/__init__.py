"""The example scripts. They ship inside the package as ``hf_progressive.examples``, so that ``hf-progressive train``
runs ``run_clm_progressive.py`` from an installed wheel too; run them as scripts (``python
examples/run_clm_progressive.py``, ``accelerate launch examples/run_clm_progressive.py``)."""
