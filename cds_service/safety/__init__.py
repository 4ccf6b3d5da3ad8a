"""The clinical safety case: the hazard log (data/safety/hazards.yaml) and its report."""
