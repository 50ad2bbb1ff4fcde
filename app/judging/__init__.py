"""Judges: automatic labellers of replies (the LLM judge today), kept apart from human ratings."""
