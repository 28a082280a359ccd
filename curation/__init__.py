"""Region-partitioned curation of fleet camera clips into training sets.

Every byte goes through a :class:`~curation.storage.store.RegionStore`, every rule comes from
params.yaml (:mod:`curation.policy.params`), every data move leaves a trace in the region's
hash-chained audit log (:mod:`curation.storage.audit`).
"""

from curation import _env  # noqa: F401  (offline settings before any third-party import)
from curation.errors import CurationError, PolicyError, ResidencyViolation

__all__ = ["CurationError", "PolicyError", "ResidencyViolation"]
