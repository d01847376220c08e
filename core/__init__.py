"""The foundation every layer may import: the user-error base class, file I/O helpers, and the
typed-config machinery. It imports nothing of semsynth."""
