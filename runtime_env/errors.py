"""The one error type of environment setup; minray turns it into RuntimeEnvSetupError."""

from __future__ import annotations


class SetupError(Exception):
    """Preparing a runtime environment failed.

    Carries what a user needs to fix it: the field, the command that failed (if any), the tail
    of its output and where the full setup log is. Passwords in URLs are masked in all of
    them (`masking.mask`): commands and installers echo index URLs.
    """

    def __init__(
        self,
        reason: str,
        *,
        field: str | None = None,
        command: list[str] | None = None,
        output_tail: str = "",
        log_path: str | None = None,
    ):
        from runtime_env.masking import mask  # on use: preparing a cached env raises none

        self.reason = mask(reason)
        self.field = field
        self.command = None if command is None else [mask(c) for c in command]
        self.output_tail = mask(output_tail)
        self.log_path = log_path
        super().__init__(self.describe())

    def describe(self) -> str:
        where = f"field '{self.field}': " if self.field else ""
        lines = [f"{where}{self.reason}"]
        if self.command:
            lines.append("command: " + " ".join(self.command))
        if self.output_tail:
            lines.append("output (last lines):\n" + self.output_tail.rstrip())
        if self.log_path:
            lines.append(f"full setup log: {self.log_path}")
        return "\n".join(lines)

    def __reduce__(self):
        kwargs = dict(field=self.field, command=self.command, output_tail=self.output_tail,
                      log_path=self.log_path)
        return _rebuild, (self.reason, kwargs)


def _rebuild(reason, kwargs):
    return SetupError(reason, **kwargs)
