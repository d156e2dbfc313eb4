"""``cvpt doctor``."""

from __future__ import annotations

from cvpt.cli.common import add_command


def register(sub) -> None:
    add_command(
        sub,
        "doctor",
        "Check PyAV/FFmpeg, codecs, motion-vector export, OpenCV and torch on this machine.",
        "cvpt doctor",
        run,
    )


def run(args) -> int:
    from cvpt.doctor import run_checks

    checks = run_checks()
    width = max(len(c.name) for c in checks)
    for c in checks:
        print(f"{'ok ' if c.ok else 'BAD'}  {c.name:<{width}}  {c.detail}")
        if not c.ok and c.fix:
            print(f"{'':<{width + 5}}  fix: {c.fix}")
    bad = [c for c in checks if not c.ok]
    print("all checks passed" if not bad else f"{len(bad)} check(s) failed")
    return 1 if bad else 0
