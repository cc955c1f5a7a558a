"""What `make run` prints: Dagster's console lines, except that a failure the user's input caused (a bad setting,
data that does not fit it, a stored file that is not what was written) is one line naming it, not a traceback.
Any other failure keeps its traceback: a bug should show where it is."""

from __future__ import annotations

import logging

import dagster as dg
from dagster._utils.error import SerializableErrorInfo
from dagster._utils.log import create_console_logger

from pipelines.automation.recovery import USER_ERRORS

FAILURES = (dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RUN_FAILURE)


class UserInputError(Exception):
    """A run failed on the user's input; the message is the one line to print."""


def user_error_names() -> set[str]:
    """The input errors (their messages say what to fix) and all their subclasses, by class name (what a failed
    step records); walked when asked, so subclasses of modules imported since are included."""
    names, todo = set(), list(USER_ERRORS)
    while todo:
        cls = todo.pop()
        names.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return names


def user_error(error: SerializableErrorInfo | None) -> str | None:
    """The message of the user error behind `error` (Dagster wraps it as the cause), or None."""
    seen = 0
    while error is not None and seen < 10:
        if error.cls_name in user_error_names():  # its message reads "<module>.<class>: <text>"
            return error.message.strip().split(f"{error.cls_name}: ", 1)[-1]
        error, seen = error.cause, seen + 1  # `raise … from`, as recovery.user_error follows it
    return None


def failure_of(result: dg.ExecuteInProcessResult) -> str | None:
    """The user error that failed `result`, if that is what failed it."""
    for event in result.all_events:
        if event.event_type == dg.DagsterEventType.STEP_FAILURE:
            message = user_error(event.step_failure_data.error)
            if message is not None:
                return f"{event.step_key}: {message}"
    return None


class UserErrorsInOneLine(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        event = (getattr(record, "dagster_meta", None) or {}).get("dagster_event")
        if event is None or event.event_type not in FAILURES:
            return True
        message = user_error(getattr(event.event_specific_data, "error", None))
        if message is None:
            return True
        if event.event_type == dg.DagsterEventType.RUN_FAILURE:
            return False  # the command prints the error itself, once
        record.msg, record.args = f"{record.getMessage().split(chr(10))[0]} {message}", ()
        return True


@dg.logger(config_schema={"log_level": dg.Field(str, is_required=False, default_value="INFO")},
           description="Dagster's colored console lines, a user error as one line")
def cli_console(init_context: dg.InitLoggerContext) -> logging.Logger:
    log = create_console_logger("dagster", init_context.logger_config["log_level"])
    log.addFilter(UserErrorsInOneLine())
    return log
