"""One plain sentence for each setting pydantic refused: the setting as the person wrote it (an environment
variable in upper case, a config file's key in lower case, whichever the value came from), the value given (never
a secret's, a URL's password masked) and what is allowed, worded by pydantic's error type and the field's own
type and bounds, so that every setting is covered without a sentence of its own."""

from __future__ import annotations

import json
import re
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union, get_args, get_origin

from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

_INTEGER = {"int_parsing", "int_type", "int_from_float", "int_parsing_size"}
_NUMBER = _INTEGER | {"float_parsing", "float_type", "finite_number"}
_BOUND = {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}
_PARSING = {"int_parsing", "float_parsing"}
_TABLE = {"dict_type", "model_type", "model_attributes_type"}
_LIST = ("a list of text, like", '["a", "b"]')
# What a number counts, by the setting's name: LETTA_READ_TIMEOUT is seconds, UNINSTALLED_BINDINGS_DAYS days.
_UNITS = (("_seconds", "seconds"), ("_timeout", "seconds"), ("_minutes", "minutes"), ("_days", "days"))
# Fixed sentences for what a type allows, whatever the setting.
_ALLOWED = {
    "bool_parsing": "must be true or false (or yes/no, on/off, 1/0)",
    "bool_type": "must be true or false (or yes/no, on/off, 1/0)",
    "string_type": "must be text, in quotes",
    "url_parsing": "must be a URL, like https://host/path",
}
# user:password@ in anything shown: a DATABASE_URL, a proxy, a URL pasted into the wrong setting.
_CREDENTIALS = re.compile(r"[^\s'\"/@\[\]{}]*:[^\s'\"/@\[\]{}]*@")
_WITH_A_UNIT = re.compile(r"\s*[-+]?[\d.]+\s*[a-zA-Z]+\s*")
_SHOWN_CHARS = 60
# A setting named in a field's description, `{uninstalled_bindings=keep}`: spelled as the refused value's source
# spells settings (a config file's `key = "value"`, the environment's KEY=value).
_HINTED = re.compile(r"\{(\w+)=([^}]*)\}")
_BARE = re.compile(r"[-+]?\d+(\.\d+)?|true|false")


@dataclass(frozen=True)
class Origin:
    """Where the values came from: the environment wins over the config file, as the settings read them."""

    environ: Mapping[str, str]
    file: Path | None = None
    keys: Mapping[str, Any] = field(default_factory=dict)
    # Whether an environment value is no setting (an empty one the settings skip, `config_sources.empty_gives_way`): the
    # file's value is then the one in force, and the one an error is about.
    gives_way: Callable[[str, object], bool] = lambda name, value: False

    def of(self, name: str) -> tuple[str, Any, str | None]:
        """The setting as its source spells it, the value as given there, and which source it is ("environment",
        "file", or None when neither has it)."""
        for key, value in self.environ.items():
            if key.lower() == name and not self.gives_way(name, value):
                return key, value, "environment"
        for key, value in self.keys.items():
            if key.lower() == name:
                return f"{self.file}: {key}", value, "file"
        return name.upper(), None, None


def sentence(err: ErrorDetails, model: type[BaseModel], origin: Origin) -> str:
    """One line for one of pydantic's errors; a model validator's error (about the settings together) as it is."""
    message = err["msg"].removeprefix("Value error, ")
    loc = err["loc"]
    if not loc or not isinstance(loc[0], str) or loc[0] not in model.model_fields:
        return message
    name = loc[0]
    info = model.model_fields[name]
    shown, given, source = origin.of(name)
    if err["type"] == "value_error":  # a validator's own words, which may name the setting as a variable
        if message.startswith(name.upper()):
            return shown + message.removeprefix(name.upper())
        owner = ".".join(str(part) for part in loc[1:-1])
        if owner and message.startswith(str(loc[-1])):  # one entry's field: SLACK_AGENTS' alice's icon_url
            return f"{shown}: {owner}'s {message}"
        return f"{shown}: {message}"
    inner = ".".join(str(part) for part in loc[1:])
    if inner and not _is_sequence(info):
        return _inner(err, shown, inner, _nested_model(info), source == "file")
    allowed = _allowed(err, name, info, source == "file")
    if _is_secret(info):
        return f"{shown} {allowed}"
    value = given if source is not None else err.get("input")
    if err["type"] in _PARSING and isinstance(value, str) and _WITH_A_UNIT.fullmatch(value):
        allowed += ", written without a unit"
    return f"{shown} {allowed}; got {_shown(value)}"


def _allowed(err: ErrorDetails, name: str, info: FieldInfo, in_file: bool) -> str:
    kind = err["type"]
    if _is_sequence(info):
        return f"must be {_LIST[0]} {_LIST[1]}"
    if kind in _NUMBER or kind in _BOUND:  # a field's description says what its bounds leave out (0 keeps all)
        return f"must be {_number(name, info)}" + (f" ({_hint(info.description, in_file)})" if info.description else "")
    if kind == "literal_error":
        expected = str((err.get("ctx") or {}).get("expected", ""))
        return f"must be one of {expected.replace(chr(39), '')}"
    if kind in _TABLE:
        return "must be a table" if in_file else f"must be a JSON object, like {_json_example(info)}"
    return _ALLOWED.get(kind, f"is not allowed ({err['msg'].lower()})")


def _hint(description: str, in_file: bool) -> str:
    """A field's description with each setting it names spelled as the source of the refused value would write it:
    a file's line is no environment variable, and the reverse."""

    def spelled(named: re.Match[str]) -> str:
        key, value = named.group(1), named.group(2)
        if not in_file:
            return f"{key.upper()}={value}"
        return f"{key} = {value if _BARE.fullmatch(value) else json.dumps(value)}"

    return _HINTED.sub(spelled, description)


def _said(bound: float) -> str:
    """A bound as people write it: 50000000, not `:g`'s 5e+07; 0.5 stays 0.5."""
    return str(int(bound)) if float(bound).is_integer() else f"{bound:g}"


def _number(name: str, info: FieldInfo) -> str:
    """`a whole number of minutes from 1 to 720`, from the field's type and its bounds."""
    integer = int in _types(info.annotation)
    unit = next((word for suffix, word in _UNITS if name.endswith(suffix)), None)
    kind = ("a whole number" if integer else "a number") + (f" of {unit}" if unit else "")
    bounds: dict[str, str] = {}
    for item in info.metadata:
        for cls, key in ((Ge, "ge"), (Gt, "gt"), (Le, "le"), (Lt, "lt")):
            if isinstance(item, cls):
                bounds[key] = _said(getattr(item, key))
    low = f"from {bounds['ge']}" if "ge" in bounds else f"greater than {bounds['gt']}" if "gt" in bounds else ""
    high = bounds.get("le") or bounds.get("lt")
    if "ge" in bounds and "le" in bounds:
        return f"{kind} from {bounds['ge']} to {bounds['le']}"
    if low and high:
        return f"{kind} {low} and {'at most' if 'le' in bounds else 'less than'} {high}"
    if "ge" in bounds:
        return f"{kind}{', at least' if unit else ' of at least'} {bounds['ge']}"
    if low:
        return f"{kind} {low}"
    if high:
        return f"{kind}{', at most' if unit else ' of at most'} {high}"
    return kind


def _inner(err: ErrorDetails, shown: str, inner: str, nested: type[BaseModel] | None, in_file: bool) -> str:
    """An error inside a table setting (an agent's look in SLACK_AGENTS): the entry and, for a key it does not
    take, the keys it does."""
    kind = err["type"]
    *entry, key = inner.split(".")
    if kind == "extra_forbidden" and nested is not None:
        keys = list(nested.model_fields)
        allowed = ", ".join(keys[:-1]) + f" or {keys[-1]}" if len(keys) > 1 else keys[0]
        return f"{shown}: {'.'.join(entry) or key} has {key}, which is none of {allowed}"
    if kind in _TABLE:
        table = "a table" if in_file else "a JSON object"
        return f"{shown}: {inner} must be {table}; got {_shown(err.get('input'))}"
    allowed = _ALLOWED.get(kind, f"is not allowed ({err['msg'].lower()})")
    return f"{shown}: {inner} {allowed}; got {_shown(err.get('input'))}"


def _shown(value: Any) -> str:
    """The value as given, clipped, with any user:password@ masked."""
    text = repr(value) if isinstance(value, str) else json.dumps(value, default=str)
    text = _CREDENTIALS.sub("***@", text)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 1] + "…"


def _types(annotation: Any) -> tuple[Any, ...]:
    if get_origin(annotation) in (Union, types.UnionType):
        return tuple(a for a in get_args(annotation) if a is not type(None))
    return (annotation,)


def _is_secret(info: FieldInfo) -> bool:
    return SecretStr in _types(info.annotation)


def _is_sequence(info: FieldInfo) -> bool:
    return any(get_origin(a) in (tuple, list) for a in _types(info.annotation))


def _nested_model(info: FieldInfo) -> type[BaseModel] | None:
    for annotation in _types(info.annotation):
        for arg in get_args(annotation):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                return arg
    return None


def _json_example(info: FieldInfo) -> str:
    nested = _nested_model(info)
    if nested is None:
        return '{"key": "value"}'
    first = next(iter(nested.model_fields))
    return json.dumps({"name": {first: "..."}})
