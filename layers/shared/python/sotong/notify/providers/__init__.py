"""Message providers behind one interface: a real HTTP client per provider and a local sandbox."""
