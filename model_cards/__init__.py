"""Model-card templates, shipped inside the package as ``hf_progressive.model_cards`` (see pyproject.toml)."""
