"""The patients' web pages, served by the public API under /pages/."""
