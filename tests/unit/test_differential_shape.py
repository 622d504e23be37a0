"""The shape of new rooms: Engine.room_shape against ReferencePolicy.room_shape
(on_create_room's JSON Patch), and what the patched request gives Synapse."""
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .differential import (
    ACTORS,
    engine_and_reference,
    event,
    guest_access_contents,
    MISSING,
    POLICY_TYPE,
    room_policies,
    SCALE,
    without_missing,
)


ODD_LEVELS = ["50", " 50 ", "5_0", "+50", "-0", "0", "\u0665\u0660", "x", "", "_5", "5_", "1__0", "\t50\x1c",
              "9223372036854775808", "-9223372036854775808", None, True, False, 50.0]
shape_levels = st.one_of(st.integers(-5, 120), st.sampled_from(ODD_LEVELS), st.just(2**70))
junk = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
              st.text(max_size=4), st.just("\ud800"), st.just("a\0b")),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=3), inner, max_size=3)),
    max_leaves=6,
)
shape_state_keys = st.sampled_from(["", "", MISSING, "x", None, 0, "\ud800"])
shape_event_types = ["m.room.reaction", "m.reaction", "m.sticker", "m.room.redaction", "x/y~z"]
shape_power_levels = st.one_of(
    st.fixed_dictionaries({}, optional={
        "events_default": shape_levels,
        "users_default": shape_levels,
        "events": st.one_of(st.dictionaries(st.sampled_from(shape_event_types), shape_levels, max_size=3),
                            st.sampled_from([[1], "x", None, [], {}])),
        "users": st.dictionaries(st.sampled_from(ACTORS), shape_levels, max_size=2),
    }),
    st.sampled_from([None, [1], "x", 0, MISSING]),
)


def shape_entry(event_type, contents):
    return st.builds(lambda sk, c: without_missing({"type": event_type, "state_key": sk, "content": c}),
                     shape_state_keys, contents)


shape_entries = st.one_of(
    shape_entry("m.room.guest_access", st.one_of(guest_access_contents, st.just({}),
                                                 st.sampled_from([None, "x", [1], MISSING]))),
    shape_entry(POLICY_TYPE, st.one_of(room_policies, st.sampled_from([None, "x", [], MISSING]))),
    shape_entry("m.room.power_levels", shape_power_levels),
    shape_entry("m.room.topic", st.just({"topic": "t"})),
    st.builds(lambda t, c: {"type": t, "content": c}, st.sampled_from([5, None, "M.room.guest_access"]), junk),
    junk,
)
shape_initial_states = st.one_of(
    st.lists(shape_entries, max_size=5),
    st.lists(shape_entries, max_size=3).map(tuple),
    st.sampled_from([None, {}, "", "abc", 5, True, [], {"type": "m.room.guest_access"}]),
)
# Rooms created with the policy event, where the power levels and m.federate are decided.
managed_initial_states = st.builds(
    lambda before, policy, after: before + [policy] + after,
    st.lists(shape_entries, max_size=2),
    st.builds(lambda c: {"type": POLICY_TYPE, "state_key": "", "content": c}, room_policies),
    st.lists(st.one_of(shape_entry("m.room.power_levels", shape_power_levels), shape_entries), max_size=2),
)
shape_requests = st.one_of(
    st.fixed_dictionaries({"initial_state": managed_initial_states}, optional={
        "creation_content": st.one_of(
            st.fixed_dictionaries({}, optional={"m.federate": st.sampled_from([True, False, 0, "false", None])}),
            st.sampled_from([None, [1], "x"])),
        "power_level_content_override": shape_power_levels.filter(lambda v: v is not MISSING),
    }),
    st.fixed_dictionaries({}, optional={
        "preset": st.sampled_from(["private_chat", "trusted_private_chat", "public_chat"]),
        "initial_state": shape_initial_states,
        "creation_content": st.one_of(
            st.fixed_dictionaries({}, optional={"m.federate": st.sampled_from([True, False, 0, "false", None]),
                                                "type": st.just("m.space")}),
            st.sampled_from([None, [1], "x", 5])),
        "power_level_content_override": shape_power_levels.filter(lambda v: v is not MISSING),
        "extra": junk,
    }),
    junk,
)


def _ops_by_path(ops):
    """The operations as {path: value}: the engine lists the open event types
    in config order, the model in its own; a path never repeats with two values."""
    by_path = {}
    for op in ops:
        assert op["op"] == "add", op
        assert by_path.get(op["path"], op["value"]) == op["value"], ops
        by_path[op["path"]] = op["value"]
    return by_path


def _room_state(request):
    """The state Synapse makes of initial_state: {(type, state_key): content}, the last entry winning."""
    state = {}
    for entry in request.get("initial_state") or ():
        if isinstance(entry, dict) and isinstance(entry.get("type"), str):
            state[(entry["type"], entry.get("state_key", ""))] = entry.get("content")
    return state


@settings(max_examples=int(1500 * SCALE), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    request_=shape_requests,
    allowed=st.lists(st.sampled_from(["m.reaction", "m.sticker", "m.room.redaction", "x/y~z"]), unique=True),
    moderator_level=st.sampled_from([50, 0, 100]),
)
def test_room_shape_agrees_with_reference_model(tmp_path_factory, request_, allowed, moderator_level):
    import copy

    from synapse_school_policy.module import _apply_patch

    engine, reference = _shape_engine(tmp_path_factory, tuple(allowed), moderator_level)
    before = copy.deepcopy(request_)
    ops = engine.room_shape(request_)
    assert _ops_by_path(ops) == _ops_by_path(reference.room_shape(request_)), request_
    assert repr(request_) == repr(before), "room_shape must not change its argument"
    if not isinstance(request_, dict):
        assert ops == []
        return
    shaped = copy.copy(request_)
    _apply_patch(shaped, ops)
    assert repr(request_) == repr(before), "the patch must copy what it changes below the top level"
    initial = shaped.get("initial_state")
    if isinstance(initial, (list, tuple)):
        # Guest access is closed unless the request set it (can_join is then refused by user_may_create_room).
        event("room_shape: initial_state is a list")
        guest = _room_state(shaped).get(("m.room.guest_access", ""))
        assert isinstance(guest, dict), shaped
        if ("m.room.guest_access", "") not in _room_state(request_) or not isinstance(
            _room_state(request_)[("m.room.guest_access", "")], dict
        ):
            assert guest == {"guest_access": "forbidden"}
        if (POLICY_TYPE, "") in _room_state(shaped):
            event("room_shape: a room with the policy event")
            assert shaped["creation_content"]["m.federate"] is False


_SHAPE_ENGINES = {}


def _shape_engine(tmp_path_factory, allowed, moderator_level):
    key = (allowed, moderator_level)
    if key not in _SHAPE_ENGINES:
        data_dir = tmp_path_factory.mktemp("shape")
        config = {"schools": {}, "service_users": [], "one_way_allowed_events": list(allowed),
                  "moderator_level": moderator_level}
        _SHAPE_ENGINES[key] = engine_and_reference(config, {}, str(data_dir))
    return _SHAPE_ENGINES[key]
