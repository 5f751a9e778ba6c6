"""API shapes of the inventory: ``…Create`` / ``…Update`` in, ``…Public`` out."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field, model_validator

from confsvc.endpoints.models import EndpointStatus, LifecycleState, Protocol, UnitLevel
from confsvc.db import IdField
from confsvc.endpoints.validation import normalise_ip
from confsvc.text import nfc, one_line

T = TypeVar("T")

Text = Annotated[str, AfterValidator(one_line), Field(min_length=1, max_length=200)]
OptText = Annotated[str | None, AfterValidator(lambda v: nfc(v) or None if v is not None else None)]
IPText = Annotated[str, AfterValidator(normalise_ip)]


class Page(BaseModel, Generic[T]):
    """One page of a list: ``items`` in a stable order, ``total`` matching the filters."""

    items: list[T]
    total: int
    limit: int
    offset: int


class UnitCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: Annotated[str, Field(pattern=r"^[0-9]{2,5}$")]
    name: Text
    division_type: Text
    level: UnitLevel
    parent_id: IdField | None = None


class UnitUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Text | None = None
    division_type: Text | None = None


class UnitPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    code: str
    name: str
    division_type: str
    level: UnitLevel
    parent_id: int | None


class RoomCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    unit_id: IdField
    name: Text
    seats: Annotated[int, Field(ge=0, le=10000)] | None = None
    location: OptText = None
    contact_name: OptText = None
    contact_phone: Annotated[str, Field(max_length=40)] | None = None
    contact_email: EmailStr | None = None


class RoomUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Text | None = None
    seats: Annotated[int, Field(ge=0, le=10000)] | None = None
    location: OptText = None
    contact_name: OptText = None
    contact_phone: Annotated[str, Field(max_length=40)] | None = None
    contact_email: EmailStr | None = None


class RoomPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    unit_id: int
    name: str
    seats: int | None
    location: str | None
    contact_name: str | None
    contact_phone: str | None
    contact_email: str | None


class EndpointCreate(BaseModel):
    """``dial_address`` is checked against ``protocol`` (see ``validation.normalise_dial_address``)."""

    model_config = ConfigDict(extra="forbid")
    room_id: IdField
    name: Text | None = None
    vendor: Annotated[str, AfterValidator(one_line), Field(min_length=1, max_length=60)]
    model: Annotated[str, AfterValidator(one_line), Field(min_length=1, max_length=100)]
    serial: Annotated[str, AfterValidator(one_line), Field(min_length=1, max_length=100)]
    protocol: Protocol
    dial_address: Annotated[str, Field(min_length=1, max_length=255)]
    management_ip: IPText | None = None
    firmware: Annotated[str, Field(max_length=100)] | None = None
    lifecycle_state: LifecycleState = LifecycleState.active


class EndpointUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    room_id: IdField | None = None
    name: Text | None = None
    vendor: Annotated[str, AfterValidator(one_line), Field(min_length=1, max_length=60)] | None = None
    model: Annotated[str, AfterValidator(one_line), Field(min_length=1, max_length=100)] | None = None
    protocol: Protocol | None = None
    dial_address: Annotated[str, Field(min_length=1, max_length=255)] | None = None
    management_ip: IPText | None = None
    firmware: Annotated[str, Field(max_length=100)] | None = None
    lifecycle_state: LifecycleState | None = None


class EndpointPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    room_id: int
    unit_id: int
    name: str
    vendor: str
    model: str
    serial: str
    protocol: Protocol
    dial_address: str
    management_ip: str | None
    firmware: str | None
    lifecycle_state: LifecycleState
    status: EndpointStatus
    last_seen_at: datetime | None


class BridgeCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Text
    vendor: Annotated[str, Field(max_length=60)] | None = None
    model: Annotated[str, Field(max_length=100)] | None = None
    port_capacity: Annotated[int, Field(gt=0, le=100000)]
    sip_domain: Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9.-]+$")]
    h323_prefix: Annotated[str, Field(max_length=20, pattern=r"^[0-9]*$")] = ""
    conference_number_min: Annotated[int, Field(ge=0)]
    conference_number_max: Annotated[int, Field(ge=0)]
    management_address: Annotated[str, Field(max_length=255)] | None = None
    active: bool = True
    unit_id: int | None = Field(default=None, description="The owning province (issue 14); none: shared. "
                                "An administrator kept in a province always creates their province's.")

    @model_validator(mode="after")
    def _range(self) -> BridgeCreate:
        if self.conference_number_min > self.conference_number_max:
            raise ValueError("conference_number_min must not exceed conference_number_max")
        return self


class BridgeUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Text | None = None
    port_capacity: Annotated[int, Field(gt=0, le=100000)] | None = None
    sip_domain: Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9.-]+$")] | None = None
    h323_prefix: Annotated[str, Field(max_length=20, pattern=r"^[0-9]*$")] | None = None
    conference_number_min: Annotated[int, Field(ge=0)] | None = None
    conference_number_max: Annotated[int, Field(ge=0)] | None = None
    management_address: Annotated[str, Field(max_length=255)] | None = None
    active: bool | None = None
    unit_id: int | None = Field(default=None, description="The owning province (issue 14); a national "
                                "administrator's change only.")


class BridgePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    vendor: str | None
    model: str | None
    port_capacity: int
    sip_domain: str
    h323_prefix: str
    conference_number_min: int
    conference_number_max: int
    management_address: str | None
    active: bool
    unit_id: int | None = None


class ImportRowError(BaseModel):
    line: int = Field(description="1-based line number in the file, header = line 1")
    reason: str


class ImportResult(BaseModel):
    created: int
    updated: int
    unchanged: int
    rooms_created: int
    dry_run: bool


# ---------------------------------------------------------------- live status (issue 4)

class AgentTokenCreate(BaseModel):
    """A token for a device agent or a bridge webhook; bind it to one endpoint or one bridge, or neither."""

    model_config = ConfigDict(extra="forbid")
    name: Text
    bridge_id: IdField | None = None
    endpoint_id: IdField | None = None

    @model_validator(mode="after")
    def _one_binding(self) -> AgentTokenCreate:
        if self.bridge_id is not None and self.endpoint_id is not None:
            raise ValueError("bind a token to a bridge or to an endpoint, not both")
        return self


class AgentTokenPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    prefix: str
    bridge_id: int | None
    endpoint_id: int | None
    created_by: int | None
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


class AgentTokenIssued(AgentTokenPublic):
    """Returned once, at creation: send ``token`` as ``Authorization: Bearer`` to ``POST /endpoints/{id}/status``."""

    token: str


class StatusReport(BaseModel):
    """A status report from a device agent, a bridge webhook or a person.

    ``at`` (UTC; offset-less = UTC) is when the device was in that state, default now; at most
    5 minutes in the future. ``detail`` is free text kept in the history (e.g. the fault).
    """

    model_config = ConfigDict(extra="forbid")
    status: EndpointStatus
    at: datetime | None = None
    detail: Annotated[str, AfterValidator(nfc), Field(max_length=500)] = ""


class StatusReportResult(BaseModel):
    """``changed``: the status differs from the previous one (history row and ``endpoint.status`` event
    written). ``stale``: a newer change is already recorded, the report was ignored."""

    endpoint_id: int
    room_id: int
    status: EndpointStatus
    previous: EndpointStatus
    changed: bool
    stale: bool
    at: datetime
    last_seen_at: datetime | None


class StatusChangePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    endpoint_id: int
    status: EndpointStatus
    previous: EndpointStatus
    at: datetime
    source: str
    detail: str
