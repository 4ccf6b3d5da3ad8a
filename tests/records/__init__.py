"""The record corpus of issue 10: Dutch GP and US EHR records with their expected decisions."""
