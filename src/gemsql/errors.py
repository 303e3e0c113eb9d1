"""The one exception type a user sees: a mistake in their input, said plainly."""


class GemsqlError(Exception):
    """A user-facing error: bad config, bad data, missing model. The CLI prints it without a traceback."""

    def __init__(self, message: str, *, file: str | None = None, row: int | None = None, field: str | None = None):
        where = ", ".join(
            part
            for part in (
                f"file {file}" if file is not None else None,
                f"row {row}" if row is not None else None,
                f"field '{field}'" if field is not None else None,
            )
            if part
        )
        super().__init__(f"{where}: {message}" if where else message)
        self.file, self.row, self.field = file, row, field
