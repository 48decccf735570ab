"""Agent Console: a small standard-library web console for an agent pool."""
