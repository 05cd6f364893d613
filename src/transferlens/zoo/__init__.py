"""The embedded model zoo: recipes, build with resume, registry."""
