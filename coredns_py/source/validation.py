"""The API server's validation rules for the fields we read, in its own words.

A manifest the API server would refuse must not be served as if a cluster
had it, and the user should read the message ``kubectl apply`` would print.
The checks and their texts follow ``k8s.io/apimachinery/pkg/util/validation``
(``IsDNS1123Label``, ``IsDNS1123Subdomain``, ``IsDNS1035Label``,
``IsValidPortName``, ``IsValidPortNum``, label keys and values) and the
renderings of ``field.Error`` (``Invalid value: "x": ...``, ``Required value``,
``Duplicate value``, ``Unsupported value``, ``Forbidden``).  Each check
returns the list of messages the Go function returns (empty: valid).
"""

from __future__ import annotations

import json
import re
from typing import Iterable, Sequence

from coredns_py.errors import SHOWN_CHARS, shown as brief

# --- names ---------------------------------------------------------------------

DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_MAX = 253
DNS1035_LABEL_MAX = 63

_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN_FMT = _DNS1123_LABEL_FMT + "(\\." + _DNS1123_LABEL_FMT + ")*"
_DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL = re.compile(_DNS1123_LABEL_FMT)
_DNS1123_SUBDOMAIN = re.compile(_DNS1123_SUBDOMAIN_FMT)
_DNS1035_LABEL = re.compile(_DNS1035_LABEL_FMT)

_DNS1123_LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric "
                      "characters or '-', and must start and end with an alphanumeric character")
_DNS1123_SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case "
                          "alphanumeric characters, '-' or '.', and must start and end with an "
                          "alphanumeric character")
_DNS1035_LABEL_MSG = ("a DNS-1035 label must consist of lower case alphanumeric characters or "
                      "'-', start with an alphabetic character, and end with an alphanumeric "
                      "character")


def max_len_error(length: int) -> str:
    return f"must be no more than {length} characters"


def regex_error(msg: str, fmt: str, *examples: str) -> str:
    """apimachinery's RegexError: the rule, examples, and the regex itself."""
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    shown = " or ".join(f"'{e}', " for e in examples)
    return f"{msg} (e.g. {shown}regex used for validation is '{fmt}')"


def _fullmatch(rx: re.Pattern, value: str) -> bool:
    # Go's regexp treats the text as bytes: only ASCII can match these classes.
    return value.isascii() and rx.fullmatch(value) is not None


def dns1123_label(value: str) -> list[str]:
    """IsDNS1123Label: namespaces, port names, hostnames."""
    errs = []
    if len(value) > DNS1123_LABEL_MAX:
        errs.append(max_len_error(DNS1123_LABEL_MAX))
    if not _fullmatch(_DNS1123_LABEL, value):
        if _fullmatch(_DNS1123_SUBDOMAIN, value):
            errs.append("must not contain dots")
        else:
            errs.append(regex_error(_DNS1123_LABEL_MSG, _DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return errs


def _matching(value: str, max_len: int, rx: re.Pattern, msg: str, fmt: str,
              *examples: str) -> list[str]:
    errs = [max_len_error(max_len)] if len(value) > max_len else []
    if not _fullmatch(rx, value):
        errs.append(regex_error(msg, fmt, *examples))
    return errs


def dns1123_subdomain(value: str) -> list[str]:
    """IsDNS1123Subdomain: most object names, an ExternalName's target."""
    return _matching(value, DNS1123_SUBDOMAIN_MAX, _DNS1123_SUBDOMAIN, _DNS1123_SUBDOMAIN_MSG,
                     _DNS1123_SUBDOMAIN_FMT, "example.com")


def dns1035_label(value: str) -> list[str]:
    """IsDNS1035Label: Service names (they become DNS labels and env variable prefixes)."""
    return _matching(value, DNS1035_LABEL_MAX, _DNS1035_LABEL, _DNS1035_LABEL_MSG,
                     _DNS1035_LABEL_FMT, "my-name", "abc-123")


# --- ports ---------------------------------------------------------------------

_PORT_NAME_CHARSET = re.compile("[-a-z0-9]+")
_PORT_NAME_LETTER = re.compile("[a-z]")


def port_name(value: str) -> list[str]:
    """IsValidPortName: an IANA service name (RFC 6335), as a named targetPort
    or a container port's name; lower case only."""
    errs = []
    if len(value) > 15:
        errs.append(max_len_error(15))
    if not _fullmatch(_PORT_NAME_CHARSET, value):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not (value.isascii() and _PORT_NAME_LETTER.search(value)):
        errs.append("must contain at least one letter (a-z)")
    if "--" in value:
        errs.append("must not contain consecutive hyphens")
    if value[:1] == "-" or value[-1:] == "-":
        errs.append("must not begin or end with a hyphen")
    return errs


def inclusive_range_error(low: int, high: int) -> str:
    return f"must be between {low} and {high}, inclusive"


def port_number(value: int) -> list[str]:
    """IsValidPortNum."""
    return [] if 1 <= value <= 65535 else [inclusive_range_error(1, 65535)]


# --- labels --------------------------------------------------------------------

_LABEL_KEY_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_KEY = re.compile(_LABEL_KEY_FMT)
_LABEL_KEY_MSG = ("must consist of alphanumeric characters, '-', '_' or '.', and must start "
                  "and end with an alphanumeric character")
_LABEL_VALUE_FMT = f"({_LABEL_KEY_FMT})?"
_LABEL_VALUE = re.compile(_LABEL_VALUE_FMT)
_LABEL_VALUE_MSG = ("a valid label must be an empty string or consist of alphanumeric "
                    "characters, '-', '_' or '.', and must start and end with an alphanumeric "
                    "character")


def label_key(value: str) -> list[str]:
    """IsLabelKey (IsQualifiedName): an optional DNS subdomain prefix and '/', then a name."""
    errs: list[str] = []
    prefix, slash, name = value.partition("/")
    if not slash:
        name = value
    elif "/" in name:
        return ["a valid label key " + regex_error(_LABEL_KEY_MSG, _LABEL_KEY_FMT, "MyName",
                                                    "my.name", "123-abc")
                + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]
    elif not prefix:
        errs.append("prefix part must be non-empty")
    else:
        errs.extend("prefix part " + m for m in dns1123_subdomain(prefix))
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > 63:
        errs.append("name part " + max_len_error(63))
    if not _fullmatch(_LABEL_KEY, name):
        errs.append("name part " + regex_error(_LABEL_KEY_MSG, _LABEL_KEY_FMT, "MyName",
                                               "my.name", "123-abc"))
    return errs


def label_value(value: str) -> list[str]:
    """IsLabelValue."""
    return _matching(value, 63, _LABEL_VALUE, _LABEL_VALUE_MSG, _LABEL_VALUE_FMT, "MyValue",
                     "my_value", "12345")


# --- how field.Error renders -------------------------------------------------------

# A list or mapping is printed whole only when it is this short, of short
# scalars: YAML aliases can make a value of millions of nodes, which no
# message walks (coredns_py.errors.shown names such a value by its kind).
_SHOWN_ITEMS = 16


def shown(value) -> str:
    """A bad value as the API server prints it: strings quoted (Go's %q), numbers bare;
    a long string cut, a big list or mapping by its kind only."""
    if isinstance(value, str):
        if len(value) > SHOWN_CHARS:
            return json.dumps(value[:SHOWN_CHARS], ensure_ascii=False) + "[...]"
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, dict)):
        items = list(value.items())[:_SHOWN_ITEMS + 1] if isinstance(value, dict) else \
            value[:_SHOWN_ITEMS + 1]
        flat = [x for item in items for x in (item if isinstance(value, dict) else (item,))]
        if len(items) > _SHOWN_ITEMS or not all(
                x is None or isinstance(x, (int, float)) or isinstance(x, str)
                and len(x) <= SHOWN_CHARS for x in flat):
            return brief(value)
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int) and value.bit_length() > 128:
        return brief(value)
    return str(value)


def invalid(value, detail: str) -> str:
    return f"Invalid value: {shown(value)}: {detail}" if detail else \
        f"Invalid value: {shown(value)}"


def invalid_all(value, details: Sequence[str]) -> str:
    """Several messages of one check about one value, as kubectl lists them."""
    return invalid(value, ", ".join(details))


def required(detail: str = "") -> str:
    return f"Required value: {detail}" if detail else "Required value"


def duplicate(value) -> str:
    return f"Duplicate value: {shown(value)}"


def not_supported(value, supported: Iterable[str]) -> str:
    return (f"Unsupported value: {shown(value)}: supported values: "
            + ", ".join(shown(s) for s in supported))


def forbidden(detail: str) -> str:
    return f"Forbidden: {detail}"
