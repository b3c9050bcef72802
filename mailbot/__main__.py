"""`python -m mailbot` runs the mailbot command."""

from mailbot.cli import run

run()
