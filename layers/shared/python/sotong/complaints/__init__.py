"""Complaints: intake, lifecycle, classification (kind, category, urgency) and reports."""
