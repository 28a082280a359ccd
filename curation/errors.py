"""The one exception hierarchy. The CLI prints ``str(error)`` as one line and exits ``exit_code``."""


class CurationError(Exception):
    """Base of every error a user can cause; never shown with a traceback."""

    exit_code = 1


class PolicyError(CurationError):
    """params.yaml, a zone file or a dvc.yaml breaks a rule; the message names file and key."""

    exit_code = 2


class ResidencyViolation(CurationError):
    """A read, write, copy or move would cross a region's boundary; refused before any byte moves."""

    exit_code = 3

    def __init__(self, region: str, other: str, action: str, target: str):
        self.region, self.other, self.action, self.target = region, other, action, target
        super().__init__(
            f"residency violation: {action} of {target!r} from region {region!r} "
            f"would reach {other}; refused"
        )


class IngestError(CurationError):
    """A clip cannot be cataloged; ``reason`` is the machine-readable quarantine reason."""

    def __init__(self, reason: str, message: str):
        self.reason = reason
        super().__init__(f"{reason}: {message}")


class RedactionError(CurationError):
    """A clip cannot be redacted as it should: not a readable video, or its two decodes disagree."""


class AuditError(CurationError):
    """The audit log's hash chain is broken; the message names the first bad line."""


class EngineError(CurationError):
    """A run of a per-clip stage stopped: a worker died or could not set up. Committed clips stay; a rerun redoes the rest."""


class LabelError(CurationError):
    """`curation label`: an input that is not a readable picture or video, or a label file that is
    not the COCO or TuSimple document it claims to be; the message names the file."""

    exit_code = 2


class UnrecordedRefusal(ResidencyViolation, AuditError):
    """A crossing refused all the same, but its audit record could not be written (the log is broken).

    Both a ResidencyViolation and an AuditError: whoever catches either sees it."""

    def __init__(self, region: str, other: str, action: str, target: str, why: str):
        super().__init__(region, other, action, target)
        self.args = (f"{self.args[0]}; its audit record could not be written: {why}",)
