"""A real native crash for the isolation test: reading address 0 raises SIGSEGV in the child."""

import ctypes


def segfault(payload):
    ctypes.string_at(0)
