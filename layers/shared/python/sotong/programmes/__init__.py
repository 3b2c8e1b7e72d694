"""Patient support programmes (seed 000): support groups, nutrition counselling, family sessions."""
