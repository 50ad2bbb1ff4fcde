"""python -m tests.loopback --port N: the loopback server in the foreground."""

import argparse

from tests.loopback.server import serve

parser = argparse.ArgumentParser(description="Loopback OpenAI-compatible test server")
parser.add_argument("--port", type=int, required=True)
serve(parser.parse_args().port)
