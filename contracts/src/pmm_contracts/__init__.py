"""PMM event contracts: the CloudEvents envelope, event models, topic catalogue and schemas.

Organisations that consume PMM topics install this package (``pmm-contracts[consumer]``);
the platform's services import it so that no service redefines another's events.
"""

from pmm_contracts.envelope import (
    CloudEvent,
    EventData,
    EventDecodeError,
    decode_event,
    encode_event,
    new_event,
    source_urn,
)

__all__ = [
    "CloudEvent",
    "EventData",
    "EventDecodeError",
    "decode_event",
    "encode_event",
    "new_event",
    "source_urn",
]
