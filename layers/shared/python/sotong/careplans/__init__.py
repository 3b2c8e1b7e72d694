"""Integrated care plans and case conferences (seed 002): cases, agency activities, reviews."""
