"""Notifications: every message to a patient or staff member goes through this pipeline."""
