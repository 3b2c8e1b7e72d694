"""Recall by treatment tag: patients, treatments, planned touchpoints and their dispatch."""
