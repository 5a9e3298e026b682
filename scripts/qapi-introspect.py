#!/usr/bin/env python3
"""Generate query-qmp-schema's answer from qapi/*.json.

Usage: qapi-introspect.py SCHEMA OUTPUT.c

Reads SCHEMA (qapi/qapi-schema.json) and the files it includes, and
writes a C file defining `const char qmp_schema_json[]`: the list of
SchemaInfo objects that QEMU's query-qmp-schema returns (commands, events,
objects, enums, arrays and builtins, with QEMU's meta-types and member
fields), so that QMP clients can discover snapvm's commands, arguments and
enum values.  Unlike QEMU, type names are not masked.  The build checks
the command argument tables and the C enum name tables against the same
data (qapi-schema-check: system/qapi-schema-check.c, monitor/qmp-schema.c)
and fails on a difference.
"""
import ast
import json
import os
import re
import sys

# QAPI builtin type -> JSON type, as QEMU's introspection reports them.
BUILTINS = {
    "str": "string", "number": "number", "bool": "boolean", "any": "value",
    "null": "null", "int": "int", "int8": "int", "int16": "int",
    "int32": "int", "int64": "int", "uint8": "int", "uint16": "int",
    "uint32": "int", "uint64": "int", "size": "int",
}
EMPTY = "q_empty"


def read_exprs(path, seen):
    """The top-level expressions of @path, includes expanded in place."""
    path = os.path.normpath(path)
    if path in seen:
        return []
    seen.add(path)
    text = "".join(line for line in open(path, encoding="utf-8")
                   if not line.lstrip().startswith("#"))
    exprs, depth, start, in_str = [], 0, None, False
    for i, c in enumerate(text):
        if in_str:
            in_str = c != "'"
        elif c == "'":
            in_str = True
        elif c == "{":
            if depth == 0:
                start = i
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                src = re.sub(r"\btrue\b", "True",
                             re.sub(r"\bfalse\b", "False",
                                    text[start:i + 1]))
                expr = ast.literal_eval(src)
                if "include" in expr:
                    inc = os.path.join(os.path.dirname(path),
                                       expr["include"])
                    exprs += read_exprs(inc, seen)
                else:
                    exprs.append(expr)
    if depth:
        sys.exit("%s: unbalanced braces" % path)
    return exprs


class Schema:
    def __init__(self, exprs):
        self.entities = []
        self.defined = {}
        self.used = set()
        for e in exprs:
            meta = next(k for k in ("command", "event", "struct", "enum")
                        if k in e)
            self.defined[e[meta]] = (meta, e)

    def type_ref(self, t):
        """The name a member or return type is known by; arrays added."""
        if isinstance(t, list):
            elem = self.type_ref(t[0])
            name = "[%s]" % elem
            if name not in self.used:
                self.used.add(name)
                self.entities.append({"name": name, "meta-type": "array",
                                      "element-type": elem})
            return name
        if t in BUILTINS:
            if t not in self.used:
                self.used.add(t)
                self.entities.append({"name": t, "meta-type": "builtin",
                                      "json-type": BUILTINS[t]})
            return t
        if t not in self.defined:
            sys.exit("qapi: type '%s' is used but not defined" % t)
        self.emit(t)
        return t

    def members(self, data):
        out = []
        for key, t in data.items():
            m = {"name": key.lstrip("*"), "type": self.type_ref(t)}
            if key.startswith("*"):
                m["default"] = None
            out.append(m)
        return out

    def object_type(self, name, data):
        if name not in self.used:
            self.used.add(name)
            self.entities.append({"name": name, "meta-type": "object",
                                  "members": self.members(data or {})})
        return name

    def emit(self, name):
        if name in self.used:
            return
        meta, e = self.defined[name]
        if meta == "enum":
            self.used.add(name)
            self.entities.append({"name": name, "meta-type": "enum",
                                  "members": [{"name": v} for v in e["data"]],
                                  "values": list(e["data"])})
        elif meta == "struct":
            self.object_type(name, e["data"])

    def run(self):
        for name, (meta, e) in self.defined.items():
            if meta in ("command", "event"):
                data = e.get("data")
                arg = (self.object_type("q_obj_%s-arg" % name, data)
                       if data else self.object_type(EMPTY, {}))
                info = {"name": name, "meta-type": meta, "arg-type": arg}
                if meta == "command":
                    ret = e.get("returns")
                    info["ret-type"] = (self.type_ref(ret) if ret
                                        else self.object_type(EMPTY, {}))
                    info["allow-oob"] = False
                self.entities.append(info)
            else:
                self.emit(name)
        return self.entities


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    entities = Schema(read_exprs(sys.argv[1], set())).run()
    text = json.dumps(entities, separators=(",", ":"))
    with open(sys.argv[2], "w", encoding="utf-8") as out:
        out.write("/* Generated by scripts/qapi-introspect.py from %s. */\n"
                  % os.path.basename(sys.argv[1]))
        out.write("const char qmp_schema_json[] =\n")
        for i in range(0, len(text), 70):
            chunk = text[i:i + 70].replace("\\", "\\\\").replace('"', '\\"')
            out.write('    "%s"\n' % chunk)
        out.write("    ;\n")


if __name__ == "__main__":
    main()
