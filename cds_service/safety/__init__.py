"""The clinical safety case: the hazard log (safety/hazards.yaml) and its report."""
