"""A run's verdict, decided in one place: the gates as data (gates.py), the exit status and its
words (decide.py, words.py)."""
