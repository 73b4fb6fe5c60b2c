"""The embedded local node, in the driver process: see node.py and docs/design.md."""

from minray.node.node import Node

__all__ = ["Node"]
