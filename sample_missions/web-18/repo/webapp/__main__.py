"""Serve the console with wsgiref: python -m webapp [--port N]."""

import argparse
from wsgiref.simple_server import make_server

from .app import App

parser = argparse.ArgumentParser(prog="webapp")
parser.add_argument("--host", default="127.0.0.1")
parser.add_argument("--port", type=int, default=8000)
args = parser.parse_args()
with make_server(args.host, args.port, App()) as server:
    print(f"Agent Console on http://{args.host}:{args.port}/")
    server.serve_forever()
