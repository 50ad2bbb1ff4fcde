"""Uploaded files, shared by the question and the reply importers: reading them within the
size limit, decoding, the column-agnostic CSV/JSONL record reader, and staging a file between
its preview and its confirmation."""
