"""Running the ``betenet`` command inside a test and reading its one-line refusals (not a test module)."""

from betenet.cli import main


def run(capsys, *argv):
    """``(exit status, stdout, stderr)`` of ``betenet ARGV`` run in-process."""
    code = main([*map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def refused(code: int, err: str, subject: str) -> bool:
    """Exit status 2 and one line on stderr that starts its reason with ``subject``."""
    lines = err.strip().splitlines()
    return code == 2 and len(lines) == 1 and f"error: {subject}: " in lines[0]
